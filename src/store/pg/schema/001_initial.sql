-- hookd's PostgreSQL schema, version 1. Applied once, in one transaction, under the
-- migration lock (see schema.rs). Names carry a `hookd_` prefix so the tables can share a
-- database with others.

-- The instances of a cluster. Each takes a node number at start: it goes into every id the
-- instance hands out (ids stay unique across instances and ordered by time) and names the
-- instance holding an event's lease. A node whose heartbeat is older than the stale limit
-- is free again.
CREATE TABLE hookd_instances (
    node integer PRIMARY KEY,
    name text NOT NULL,
    started_at_ms bigint NOT NULL,
    heartbeat_ms bigint NOT NULL
);

-- Every request to a receiver endpoint, whatever its verdict. Partitioned by the day its
-- id was made (ids begin with their time), so retention drops whole days: the space is
-- returned to the file system at once, with no DELETE and no vacuum debt. The default
-- partition holds rows no day partition was made for (a clock far off), pruned by DELETE.
CREATE TABLE hookd_deliveries (
    id bigint NOT NULL,
    received_at_ms bigint NOT NULL,
    endpoint text NOT NULL,
    remote_addr text,
    request_headers jsonb NOT NULL,
    body text NOT NULL,
    body_bytes bigint NOT NULL,
    body_truncated boolean NOT NULL,
    verdict text NOT NULL,
    reason text NOT NULL,
    response_status integer NOT NULL,
    response_headers jsonb NOT NULL,
    response_body text NOT NULL,
    event_id text,
    event_type text,
    event_seq bigint,
    latency_us bigint,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE TABLE hookd_deliveries_default PARTITION OF hookd_deliveries DEFAULT;
CREATE INDEX hookd_deliveries_endpoint ON hookd_deliveries (endpoint, id);
CREATE INDEX hookd_deliveries_verdict ON hookd_deliveries (verdict, id);
CREATE INDEX hookd_deliveries_type ON hookd_deliveries (event_type text_pattern_ops, id);
CREATE INDEX hookd_deliveries_event ON hookd_deliveries (event_seq);

-- Accepted webhooks: the queue and the dedup log in one. The unique key on (endpoint,
-- event_id) is what makes a redelivery a duplicate on every instance; an event stays (and
-- so does its key) for the retention window. `lease_node`/`lease_until_ms` say which
-- instance runs a `processing` event and until when; a lease not renewed in time (the
-- instance died) puts the event back on the queue for another.
CREATE TABLE hookd_events (
    seq bigint PRIMARY KEY,
    endpoint text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    received_at_ms bigint NOT NULL,
    delivery_id bigint NOT NULL,
    payload bytea NOT NULL,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at_ms bigint,
    last_error text,
    replays integer NOT NULL DEFAULT 0,
    attempts_before_replay integer NOT NULL DEFAULT 0,
    lease_node integer,
    lease_until_ms bigint,
    CONSTRAINT hookd_events_dedup UNIQUE (endpoint, event_id)
);
CREATE INDEX hookd_events_due ON hookd_events (next_attempt_at_ms, seq)
    WHERE state IN ('queued', 'retrying');
CREATE INDEX hookd_events_lease ON hookd_events (lease_until_ms)
    WHERE state = 'processing';
CREATE INDEX hookd_events_state ON hookd_events (state, seq);
CREATE INDEX hookd_events_received ON hookd_events (received_at_ms);

-- Each processing attempt, under its own number, with the instance that made it.
CREATE TABLE hookd_attempts (
    seq bigint NOT NULL,
    number integer NOT NULL,
    node integer NOT NULL,
    instance text NOT NULL,
    processor text NOT NULL,
    started_at_ms bigint NOT NULL,
    finished_at_ms bigint NOT NULL,
    outcome text NOT NULL,
    detail text NOT NULL,
    PRIMARY KEY (seq, number)
);

-- Counters that are not a count of rows (rejections beyond the logging rate).
CREATE TABLE hookd_counters (
    name text PRIMARY KEY,
    n bigint NOT NULL
);

-- Fasten Connect: connections, stored exports (a record exists once every file of the
-- export is in exports_dir), and where each resource's line is in those files.
CREATE TABLE hookd_connections (
    id text PRIMARY KEY,
    record jsonb NOT NULL
);
CREATE TABLE hookd_exports (
    connection text NOT NULL,
    task_id text NOT NULL UNIQUE,
    record jsonb NOT NULL,
    PRIMARY KEY (connection, task_id)
);
CREATE TABLE hookd_resources (
    connection text NOT NULL,
    resource_type text NOT NULL,
    id text NOT NULL,
    task_id text NOT NULL,
    file text NOT NULL,
    "offset" bigint NOT NULL,
    len bigint NOT NULL,
    PRIMARY KEY (connection, resource_type, id)
);
CREATE INDEX hookd_resources_task ON hookd_resources (connection, task_id);

-- Web UI sessions, so a user stays logged in whichever instance answers. The session id
-- is a bearer credential: only its SHA-256 is stored.
CREATE TABLE hookd_sessions (
    id_sha256 text PRIMARY KEY,
    csrf text NOT NULL,
    expires_at_ms bigint NOT NULL
);
