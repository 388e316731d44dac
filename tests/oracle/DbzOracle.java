// Runs Debezium's embedded engine (the oracle for encodings) against PostgreSQL or MySQL (a
// MariaDB reporting a 5.7 version) and prints each
// change event's value as JSON (JsonConverter, schemas.enable=false), one per line, until
// EXPECTED events arrived. Prints "READY" once the engine streams. With `schemas` as fifth
// argument the converter includes the Kafka Connect schemas and each line is
// {"key": KEY, "value": VALUE}. With `avro=URL` instead, the converter is Confluent's AvroConverter
// registering its schemas in the schema registry at URL; each event is printed as the JSON of
// what its Avro bytes decode to.
//
// usage: java -cp 'libs/*:.' DbzOracle postgres|mysql PORT DATABASE TABLE EXPECTED [schemas|avro=URL]
import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;

import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

public class DbzOracle {
    public static void main(String[] args) throws Exception {
        String kind = args[0], port = args[1], db = args[2], table = args[3];
        int expected = Integer.parseInt(args[4]);
        boolean schemas = args.length > 5 && args[5].equals("schemas");
        String registry = args.length > 5 && args[5].startsWith("avro=") ? args[5].substring(5) : null;
        Properties p = new Properties();
        p.setProperty("name", "oracle");
        p.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        p.setProperty("offset.flush.interval.ms", "60000");
        p.setProperty("database.hostname", "127.0.0.1");
        p.setProperty("database.port", port);
        p.setProperty("database.password", "");
        p.setProperty("topic.prefix", "oracle");
        if (kind.equals("mysql")) {
            p.setProperty("connector.class", "io.debezium.connector.mysql.MySqlConnector");
            p.setProperty("database.user", "root");
            // One replica id per database: two oracles with the same id would drop each other.
            p.setProperty("database.server.id", Integer.toString(9000 + Math.floorMod(db.hashCode(), 900)));
            p.setProperty("database.include.list", db);
            p.setProperty("schema.history.internal", "io.debezium.relational.history.MemorySchemaHistory");
            p.setProperty("include.schema.changes", "false");
        } else {
            p.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
            p.setProperty("database.user", "postgres");
            p.setProperty("database.dbname", db);
            p.setProperty("plugin.name", "pgoutput");
            // Slots are per server: one per database, so two oracles on one server never share one.
            p.setProperty("slot.name", "dbz_" + db);
            p.setProperty("publication.name", "dbz_" + db);
            p.setProperty("publication.autocreate.mode", "filtered");
        }
        p.setProperty("table.include.list", table);
        p.setProperty("snapshot.mode", "no_data");
        String enable = schemas ? "true" : "false";
        p.setProperty("key.converter.schemas.enable", enable);
        p.setProperty("value.converter.schemas.enable", enable);
        p.setProperty("converter.schemas.enable", enable);
        if (registry != null) {
            p.setProperty("converter.schema.registry.url", registry);
            var decoder = new io.confluent.connect.avro.AvroConverter();
            decoder.configure(java.util.Map.of("schema.registry.url", registry), false);
            var json = new org.apache.kafka.connect.json.JsonConverter();
            json.configure(java.util.Map.of("schemas.enable", "false"), false);
            boolean ok = run(io.debezium.engine.format.Avro.class, p, expected, (ChangeEvent<byte[], byte[]> record) -> {
                var value = decoder.toConnectData(record.destination(), record.value());
                return new String(json.fromConnectData(record.destination(), value.schema(), value.value()));
            });
            System.exit(ok ? 0 : 3);
        }
        boolean ok = run(Json.class, p, expected, (ChangeEvent<String, String> record) ->
                schemas ? "{\"key\":" + record.key() + ",\"value\":" + record.value() + "}" : record.value());
        System.exit(ok ? 0 : 3);
    }

    /// Runs the engine with `format`, printing each event (tombstones skipped) as `render` gives
    /// it, until `expected` events were printed; false when they did not come within 120 s.
    static <T> boolean run(Class<? extends io.debezium.engine.format.SerializationFormat<T>> format, Properties p,
            int expected, java.util.function.Function<ChangeEvent<T, T>, String> render) throws Exception {
        AtomicInteger seen = new AtomicInteger();
        CountDownLatch done = new CountDownLatch(1);
        DebeziumEngine<ChangeEvent<T, T>> engine = DebeziumEngine.create(format)
                .using(p)
                .using(new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void taskStarted() {
                        System.out.println("READY");
                        System.out.flush();
                    }
                })
                .using((success, message, error) -> {
                    if (!success) {
                        System.err.println("engine stopped: " + message);
                        if (error != null) {
                            error.printStackTrace();
                        }
                    }
                })
                .notifying(record -> {
                    if (record.value() == null) {
                        return;
                    }
                    System.out.println(render.apply(record));
                    System.out.flush();
                    if (seen.incrementAndGet() >= expected) {
                        done.countDown();
                    }
                })
                .build();
        var executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        boolean ok = done.await(120, TimeUnit.SECONDS);
        engine.close();
        executor.shutdown();
        return ok;
    }
}
