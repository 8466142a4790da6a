-- Label Studio's own database next to the store's (POSTGRES_DB=clesc); the postgres image runs this once,
-- on its first start with an empty volume. Owned by the same user the services connect as.
CREATE DATABASE labelstudio OWNER clesc;
