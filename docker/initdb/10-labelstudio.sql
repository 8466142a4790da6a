-- Label Studio's own database next to clesc's store, on the same PostgreSQL server.
CREATE DATABASE labelstudio OWNER clesc;
