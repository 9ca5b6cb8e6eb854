-- 0001_init.sql - the coordinator's durable state (DESIGN 4, docs/state-dir.md).
-- Applied in one transaction; PRAGMA user_version records the last migration.

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    state         TEXT NOT NULL CHECK (state IN ('queued','running','done','failed','cancelled')),
    priority      INTEGER NOT NULL DEFAULT 0,
    model         TEXT NOT NULL,
    n_samples     INTEGER NOT NULL,
    clip_frames   INTEGER NOT NULL,
    overlap       INTEGER NOT NULL,
    blend         TEXT NOT NULL,
    steps         INTEGER NOT NULL,
    seed          INTEGER NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    text_scale    REAL NOT NULL,
    audio_scale   REAL NOT NULL,
    fps           INTEGER NOT NULL,
    prompt        TEXT NOT NULL DEFAULT '',
    negative      TEXT NOT NULL DEFAULT '',
    audio_path    TEXT NOT NULL DEFAULT '',
    image_path    TEXT NOT NULL DEFAULT '',
    n_windows     INTEGER NOT NULL,
    latent_frames INTEGER NOT NULL,
    created_at    REAL NOT NULL,
    started_at    REAL NOT NULL DEFAULT 0,
    finished_at   REAL NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    stale_results INTEGER NOT NULL DEFAULT 0,
    requeued      INTEGER NOT NULL DEFAULT 0,
    bytes_sent    INTEGER NOT NULL DEFAULT 0,
    bytes_full    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_state ON jobs(state, priority DESC, id);

-- One row per window: the wavefront. received_step: last step whose output
-- is in the latent store; final_step: last step whose blended value is final.
CREATE TABLE windows (
    job_id        INTEGER NOT NULL REFERENCES jobs(id),
    k             INTEGER NOT NULL,
    start         INTEGER NOT NULL,
    len           INTEGER NOT NULL,
    received_step INTEGER NOT NULL DEFAULT -1,
    final_step    INTEGER NOT NULL DEFAULT -1,
    attempt       INTEGER NOT NULL DEFAULT 0,
    checksum      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, k)
) WITHOUT ROWID;

-- Task attempts handed out (a denoise task is (job, window, step)).
CREATE TABLE tasks (
    job_id       INTEGER NOT NULL,
    window       INTEGER NOT NULL,
    step         INTEGER NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'denoise',
    state        TEXT NOT NULL CHECK (state IN ('running','done','requeued')),
    attempt      INTEGER NOT NULL,
    lease_owner  TEXT NOT NULL DEFAULT '',
    lease_expiry REAL NOT NULL DEFAULT 0,
    done_at      REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, window, step)
) WITHOUT ROWID;

CREATE TABLE workers (
    name         TEXT PRIMARY KEY,
    backend      TEXT NOT NULL,
    device       TEXT NOT NULL,
    models       TEXT NOT NULL,
    first_seen   REAL NOT NULL,
    last_seen    REAL NOT NULL
);

CREATE TABLE blobs (
    hash         TEXT PRIMARY KEY,
    path         TEXT NOT NULL,
    bytes        INTEGER NOT NULL
);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
    job_id       INTEGER,
    kind         TEXT NOT NULL,
    message      TEXT NOT NULL
);
