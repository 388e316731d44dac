// Debezium 3.6's embedded engine draining a backlog, for scripts/bench-debezium.sh: JSON values
// (JsonConverter, schemas off: the envelope cdc writes by default) to standard output, until
// EVENTS change events arrived. Then one line on standard error:
//   debezium: EVENTS events; first after S s, last after S s (from JVM start); CPU S s; peak RSS N MB
//
// usage: java -cp 'libs/*:.' DbzBench mysql PORT DATABASE TABLE EVENTS BINLOG_FILE OFFSETS_FILE
//        java -cp 'libs/*:.' DbzBench postgres PORT DATABASE TABLE EVENTS SLOT PUBLICATION
//        java -cp 'libs/*:.' DbzBench mysql|postgres PORT DATABASE TABLE EVENTS snapshot [PUBLICATION]
// The last form takes an initial snapshot of the table instead (snapshot.mode=initial_only; a
// PostgreSQL slot named dbz_snapshot is created for it).
// MySQL starts at the beginning of BINLOG_FILE: Debezium 3.6 has no mode that reads an existing
// binlog from a given position, so an offset is stored for it first (OFFSETS_FILE, Kafka
// Connect's file store), and snapshot.mode=recovery reads the table definitions at start.
// PostgreSQL streams from the given slot (created before the backlog) without a snapshot.
import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;

import java.io.BufferedWriter;
import java.io.OutputStreamWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

public class DbzBench {
    public static void main(String[] args) throws Exception {
        String kind = args[0], port = args[1], db = args[2], table = args[3];
        long expected = Long.parseLong(args[4]);
        Properties p = new Properties();
        p.setProperty("name", "bench");
        p.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        p.setProperty("offset.flush.interval.ms", "60000");
        p.setProperty("database.hostname", "127.0.0.1");
        p.setProperty("database.port", port);
        p.setProperty("database.password", "");
        p.setProperty("topic.prefix", "bench");
        p.setProperty("table.include.list", table);
        p.setProperty("key.converter.schemas.enable", "false");
        p.setProperty("value.converter.schemas.enable", "false");
        p.setProperty("converter.schemas.enable", "false");
        boolean snapshot = args.length > 5 && args[5].equals("snapshot");
        if (kind.equals("mysql")) {
            p.setProperty("connector.class", "io.debezium.connector.mysql.MySqlConnector");
            p.setProperty("database.user", "root");
            p.setProperty("database.server.id", "9901");
            p.setProperty("database.include.list", db);
            p.setProperty("schema.history.internal", "io.debezium.relational.history.MemorySchemaHistory");
            p.setProperty("include.schema.changes", "false");
            if (snapshot) {
                p.setProperty("snapshot.mode", "initial_only");
            } else {
                p.setProperty("snapshot.mode", "recovery");
                storeOffset(args[6], "{\"file\":\"" + args[5] + "\",\"pos\":4}");
                p.setProperty("offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore");
                p.setProperty("offset.storage.file.filename", args[6]);
            }
        } else {
            p.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
            p.setProperty("database.user", "postgres");
            p.setProperty("database.dbname", db);
            p.setProperty("plugin.name", "pgoutput");
            p.setProperty("slot.name", snapshot ? "dbz_snapshot" : args[5]);
            p.setProperty("publication.name", args[6]);
            p.setProperty("publication.autocreate.mode", "disabled");
            p.setProperty("snapshot.mode", snapshot ? "initial_only" : "no_data");
        }
        long start = ManagementFactory.getRuntimeMXBean().getStartTime();
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);
        long[] seen = {0};
        long[] firstAt = {0};
        CountDownLatch done = new CountDownLatch(1);
        DebeziumEngine<ChangeEvent<String, String>> engine = DebeziumEngine.create(Json.class)
                .using(p)
                .using((success, message, error) -> {
                    if (!success) {
                        System.err.println("engine stopped: " + message);
                        done.countDown();
                    }
                })
                .notifying(record -> {
                    if (record.value() == null) {
                        return;
                    }
                    try {
                        out.write(record.value());
                        out.write('\n');
                    } catch (java.io.IOException e) {
                        throw new RuntimeException(e);
                    }
                    if (seen[0]++ == 0) {
                        firstAt[0] = System.currentTimeMillis();
                    }
                    if (seen[0] >= expected) {
                        done.countDown();
                    }
                })
                .build();
        var executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        boolean ok = done.await(600, TimeUnit.SECONDS) && seen[0] >= expected;
        long lastAt = System.currentTimeMillis();
        out.flush();
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        double cpu = os.getProcessCpuTime() / 1e9;
        long peakKb = Files.readAllLines(Path.of("/proc/self/status")).stream()
                .filter(l -> l.startsWith("VmHWM:"))
                .mapToLong(l -> Long.parseLong(l.replaceAll("[^0-9]", "")))
                .findFirst().orElse(0);
        System.err.printf("debezium: %d events; first after %.2f s, last after %.2f s (from JVM start); CPU %.2f s; peak RSS %d MB%n",
                seen[0], (firstAt[0] - start) / 1000.0, (lastAt - start) / 1000.0, cpu, peakKb / 1024);
        System.err.flush();
        // The engine's threads need not wind down for the figures above.
        Runtime.getRuntime().halt(ok ? 0 : 3);
    }

    /// Writes `offset` (JSON) for this engine and server the way Kafka Connect's
    /// FileOffsetBackingStore keeps it: a serialized map of key bytes to value bytes, the key
    /// being the JSON of [engine name, partition].
    static void storeOffset(String file, String offset) throws java.io.IOException {
        var raw = new java.util.HashMap<byte[], byte[]>();
        raw.put("[\"bench\",{\"server\":\"bench\"}]".getBytes(StandardCharsets.UTF_8), offset.getBytes(StandardCharsets.UTF_8));
        try (var os = new java.io.ObjectOutputStream(Files.newOutputStream(Path.of(file)))) {
            os.writeObject(raw);
        }
    }
}
