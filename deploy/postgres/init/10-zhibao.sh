#!/bin/sh
# First start of the PostgreSQL volume: one role and one database per service
# (aggregator, alerts, response) and one for the token store all services share (tokens).
# Passwords come from the container's environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v aggregator_pw="$AGGREGATOR_DB_PASSWORD" -v alerts_pw="$ALERTS_DB_PASSWORD" \
    -v response_pw="$RESPONSE_DB_PASSWORD" -v tokens_pw="$TOKENS_DB_PASSWORD" <<'SQL'
CREATE ROLE aggregator LOGIN PASSWORD :'aggregator_pw';
CREATE ROLE alerts LOGIN PASSWORD :'alerts_pw';
CREATE ROLE response LOGIN PASSWORD :'response_pw';
CREATE ROLE tokens LOGIN PASSWORD :'tokens_pw';
CREATE DATABASE aggregator OWNER aggregator;
CREATE DATABASE alerts OWNER alerts;
CREATE DATABASE response OWNER response;
CREATE DATABASE tokens OWNER tokens;
REVOKE ALL ON DATABASE aggregator FROM PUBLIC;
REVOKE ALL ON DATABASE alerts FROM PUBLIC;
REVOKE ALL ON DATABASE response FROM PUBLIC;
REVOKE ALL ON DATABASE tokens FROM PUBLIC;
SQL
