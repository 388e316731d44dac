// Runs Debezium's embedded engine (the oracle for encodings) against PostgreSQL or MySQL (a
// MariaDB reporting a 5.7 version) and prints each
// change event's value as JSON (JsonConverter, schemas.enable=false), one per line, until
// EXPECTED events arrived. Prints "READY" once the engine streams. With `schemas` as fifth
// argument the converter includes the Kafka Connect schemas and each line is
// {"key": KEY, "value": VALUE}. With `avro` instead, the converter is Confluent's AvroConverter
// with an in-memory registry, and each line is the Avro key and value schemas it registered:
// {"topic": TOPIC, "key": KEY SCHEMA, "value": VALUE SCHEMA}.
//
// usage: java -cp 'libs/*:.' DbzOracle postgres|mysql PORT DATABASE TABLE EXPECTED [schemas|avro]
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
        boolean avro = args.length > 5 && args[5].equals("avro");
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
        AtomicInteger seen = new AtomicInteger();
        CountDownLatch done = new CountDownLatch(1);
        DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class)
                .using(p)
                .using(new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void taskStarted() {
                        System.out.println("READY");
                        System.out.flush();
                    }
                })
                .notifying(record -> {
                    if (record.value() == null) {
                        return;
                    }
                    System.out.println(
                            schemas ? "{\"key\":" + record.key() + ",\"value\":" + record.value() + "}" : record.value());
                    System.out.flush();
                    if (seen.incrementAndGet() >= expected) {
                        done.countDown();
                    }
                })
                .build();
        if (avro) {
            p.setProperty("converter.schema.registry.url", "mock://oracle");
            runAvro(p, expected);
            return;
        }
        var executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        boolean ok = done.await(120, TimeUnit.SECONDS);
        engine.close();
        executor.shutdown();
        System.exit(ok ? 0 : 3);
    }

    static void runAvro(Properties p, int expected) throws Exception {
        AtomicInteger seen = new AtomicInteger();
        CountDownLatch done = new CountDownLatch(1);
        java.util.Set<String> topics = java.util.concurrent.ConcurrentHashMap.newKeySet();
        DebeziumEngine<ChangeEvent<byte[], byte[]>> engine = DebeziumEngine.create(io.debezium.engine.format.Avro.class)
                .using(p)
                .using(new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void taskStarted() {
                        System.out.println("READY");
                        System.out.flush();
                    }
                })
                .notifying(record -> {
                    if (record.value() == null) {
                        return;
                    }
                    topics.add(record.destination());
                    if (seen.incrementAndGet() >= expected) {
                        done.countDown();
                    }
                })
                .build();
        var executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        boolean ok = done.await(120, TimeUnit.SECONDS);
        var registry = io.confluent.kafka.schemaregistry.testutil.MockSchemaRegistry.getClientForScope("oracle");
        for (String topic : topics) {
            String key = registry.getLatestSchemaMetadata(topic + "-key").getSchema();
            String value = registry.getLatestSchemaMetadata(topic + "-value").getSchema();
            System.out.println("{\"topic\":\"" + topic + "\",\"key\":" + key + ",\"value\":" + value + "}");
        }
        System.out.flush();
        engine.close();
        executor.shutdown();
        System.exit(ok ? 0 : 3);
    }
}
