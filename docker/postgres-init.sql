-- A replication user for cdc (the PostgreSQL source is issue #4).
CREATE ROLE cdc WITH LOGIN REPLICATION PASSWORD 'cdc';
CREATE TABLE IF NOT EXISTS public.orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO cdc;
