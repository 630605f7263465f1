-- Accounts, sites, hostnames, deploy tokens and deploys (PostgreSQL).
-- Keep in step with ../sqlite/0001_initial.sql: only the id columns differ.

CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    readonly BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Local site ids (pull-zone ids of the local provider) are never reused, so
-- analytics of a deleted site never mix with a new one.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    next_value BIGINT NOT NULL
);
INSERT INTO counters (name, next_value) VALUES ('site', 1000);

CREATE TABLE sites (
    id BIGINT PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES accounts (id),
    nickname TEXT NOT NULL,
    branch TEXT NOT NULL,
    publish_dir TEXT NOT NULL,
    url TEXT NOT NULL,
    storage_zone_id BIGINT,
    storage_zone_name TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX sites_owner ON sites (owner_id);

CREATE TABLE hostnames (
    hostname TEXT PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites (id),
    state TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX hostnames_site ON hostnames (site_id);

CREATE TABLE deploy_tokens (
    id BIGSERIAL PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites (id),
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX deploy_tokens_site ON deploy_tokens (site_id);

CREATE TABLE deploys (
    id BIGSERIAL PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites (id),
    commit_sha TEXT NOT NULL,
    files_uploaded BIGINT NOT NULL,
    files_deleted BIGINT NOT NULL,
    files_kept BIGINT NOT NULL,
    bytes_uploaded BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT NOT NULL,
    cache_purged BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX deploys_site ON deploys (site_id, id);
