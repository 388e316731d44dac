// A Confluent-compatible schema registry for tests: the REST API subset that serializers,
// deserializers and cdc use, served over HTTP and backed by Confluent's own in-memory
// registry (MockSchemaRegistryClient from kafka-schema-registry-client). No real registry
// (Confluent, Karapace, Apicurio) is installable on the test machine. New versions of a
// subject must be BACKWARD compatible with the latest, as with a default Confluent registry.
//
// usage: java -cp 'libs/*:.' SchemaRegistry PORT
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.confluent.kafka.schemaregistry.ParsedSchema;
import io.confluent.kafka.schemaregistry.avro.AvroSchema;
import io.confluent.kafka.schemaregistry.client.MockSchemaRegistryClient;
import io.confluent.kafka.schemaregistry.client.SchemaMetadata;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;

public class SchemaRegistry {
    static final ObjectMapper JSON = new ObjectMapper();
    static final MockSchemaRegistryClient REGISTRY = new MockSchemaRegistryClient();

    public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 16);
        server.createContext("/", SchemaRegistry::handle);
        server.start();
        System.out.println("READY");
        System.out.flush();
    }

    static void handle(HttpExchange ex) throws IOException {
        int status = 200;
        Object body;
        try {
            String[] path = ex.getRequestURI().getPath().replaceAll("^/+|/+$", "").split("/");
            String method = ex.getRequestMethod();
            byte[] request = ex.getRequestBody().readAllBytes();
            body = route(method, path, request.length == 0 ? null : JSON.readTree(request));
        } catch (Failure f) {
            status = f.status;
            ObjectNode error = JSON.createObjectNode();
            error.put("error_code", f.code);
            error.put("message", f.getMessage());
            body = error;
        } catch (Exception e) {
            status = 500;
            ObjectNode error = JSON.createObjectNode();
            error.put("error_code", 50001);
            error.put("message", String.valueOf(e));
            body = error;
        }
        byte[] out = JSON.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/vnd.schemaregistry.v1+json");
        ex.sendResponseHeaders(status, out.length);
        ex.getResponseBody().write(out);
        ex.close();
    }

    static Object route(String method, String[] p, JsonNode request) throws Exception {
        // GET /subjects
        if (method.equals("GET") && p.length == 1 && p[0].equals("subjects")) {
            return REGISTRY.getAllSubjects();
        }
        // GET /schemas/ids/{id}
        if (method.equals("GET") && p.length == 3 && p[0].equals("schemas") && p[1].equals("ids")) {
            ParsedSchema schema;
            try {
                schema = REGISTRY.getSchemaById(Integer.parseInt(p[2]));
            } catch (Exception e) {
                throw new Failure(404, 40403, "Schema " + p[2] + " not found");
            }
            ObjectNode out = JSON.createObjectNode();
            out.put("schema", schema.canonicalString());
            return out;
        }
        if (p.length >= 2 && p[0].equals("subjects")) {
            String subject = p[1];
            // POST /subjects/{subject}/versions: register
            if (method.equals("POST") && p.length == 3 && p[2].equals("versions")) {
                AvroSchema schema = parse(request);
                if (!REGISTRY.getAllSubjects().contains(subject) || REGISTRY.testCompatibility(subject, schema)
                        || registered(subject, schema)) {
                    ObjectNode out = JSON.createObjectNode();
                    out.put("id", REGISTRY.register(subject, schema));
                    return out;
                }
                throw new Failure(409, 409, "Schema being registered is incompatible with an earlier schema for subject \""
                        + subject + "\"");
            }
            // POST /subjects/{subject}: is this schema registered under the subject?
            if (method.equals("POST") && p.length == 2) {
                AvroSchema schema = parse(request);
                if (!REGISTRY.getAllSubjects().contains(subject)) {
                    throw new Failure(404, 40401, "Subject '" + subject + "' not found.");
                }
                if (!registered(subject, schema)) {
                    throw new Failure(404, 40403, "Schema not found");
                }
                return metadata(subject, REGISTRY.getVersion(subject, schema));
            }
            if (!REGISTRY.getAllSubjects().contains(subject)) {
                throw new Failure(404, 40401, "Subject '" + subject + "' not found.");
            }
            // GET /subjects/{subject}/versions
            if (method.equals("GET") && p.length == 3 && p[2].equals("versions")) {
                return REGISTRY.getAllVersions(subject);
            }
            // GET /subjects/{subject}/versions/{version|latest}
            if (method.equals("GET") && p.length == 4 && p[2].equals("versions")) {
                List<Integer> versions = REGISTRY.getAllVersions(subject);
                int version = p[3].equals("latest") ? versions.get(versions.size() - 1) : Integer.parseInt(p[3]);
                if (!versions.contains(version)) {
                    throw new Failure(404, 40402, "Version " + p[3] + " not found.");
                }
                return metadata(subject, version);
            }
        }
        throw new Failure(404, 404, "HTTP 404 Not Found");
    }

    static boolean registered(String subject, AvroSchema schema) {
        try {
            REGISTRY.getVersion(subject, schema);
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    static ObjectNode metadata(String subject, int version) throws Exception {
        SchemaMetadata m = REGISTRY.getSchemaMetadata(subject, version);
        ObjectNode out = JSON.createObjectNode();
        out.put("subject", subject);
        out.put("version", m.getVersion());
        out.put("id", m.getId());
        out.put("schema", m.getSchema());
        return out;
    }

    static AvroSchema parse(JsonNode request) throws Failure {
        if (request == null || !request.hasNonNull("schema")) {
            throw new Failure(422, 42201, "Empty schema");
        }
        if (request.hasNonNull("schemaType") && !request.get("schemaType").asText().equals("AVRO")) {
            throw new Failure(422, 42201, "Only Avro schemas are supported here");
        }
        try {
            return new AvroSchema(request.get("schema").asText());
        } catch (Exception e) {
            throw new Failure(422, 42201, "Invalid schema: " + e.getMessage());
        }
    }

    static class Failure extends Exception {
        final int status, code;

        Failure(int status, int code, String message) {
            super(message);
            this.status = status;
            this.code = code;
        }
    }
}
