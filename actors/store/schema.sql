-- LLM Incident Manager store (SQLite), schema version 6. Times are Unix seconds (REAL, UTC).
-- actors/store/migrations.py brings older files to this version.
-- Space freed by retention (actors/retention.py) is handed back with PRAGMA incremental_vacuum;
-- this takes effect only on a file that has no tables yet (migrations.py VACUUMs older files).
PRAGMA auto_vacuum = INCREMENTAL;
CREATE TABLE IF NOT EXISTS incidents (
    id          TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    active      INTEGER NOT NULL,
    state       INTEGER NOT NULL,
    severity    INTEGER NOT NULL,
    source      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    -- The incident as it stands now: its own JSON, or NULL when it is exactly the snapshot of
    -- timeline row event_id (the last event that notified), so each snapshot is stored once.
    data        TEXT,
    event_id    INTEGER
);
CREATE INDEX IF NOT EXISTS incidents_active_fingerprint ON incidents (fingerprint) WHERE active = 1;
CREATE INDEX IF NOT EXISTS incidents_created ON incidents (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id    TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    data        TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS timeline (
    id          INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    at          REAL NOT NULL,
    actor       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    snapshot    TEXT,           -- incident as it was right after this event (events that notify)
    routing     TEXT            -- lifecycle events: what routing decided per destination (JSON)
);
CREATE INDEX IF NOT EXISTS timeline_incident ON timeline (incident_id, id);

-- The outbox: one row per (event, receiver). due_at is set while the row is owed. lease names
-- the router that holds the row ("<server instance>:<router epoch>"); a row whose lease names
-- anyone but the current router is free to take. Settling a row clears its lease.
CREATE TABLE IF NOT EXISTS notifications (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    incident_id  TEXT NOT NULL,
    timeline_id  INTEGER NOT NULL,
    channel      TEXT NOT NULL,
    destination  TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    occurred_at  REAL NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       REAL,
    lease        TEXT,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    delivered_at REAL,
    last_error   TEXT NOT NULL DEFAULT '',
    suppressed_by TEXT          -- silenced: the silence's id; inhibited: the inhibiting incident's id
);
CREATE INDEX IF NOT EXISTS notifications_owed
    ON notifications (channel, destination, due_at, seq) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_order
    ON notifications (incident_id, channel, destination, seq) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_incident ON notifications (incident_id, seq);
CREATE INDEX IF NOT EXISTS notifications_status ON notifications (channel, status);
CREATE INDEX IF NOT EXISTS notifications_delivered
    ON notifications (channel, delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS notifications_suppressed
    ON notifications (suppressed_by, incident_id) WHERE suppressed_by IS NOT NULL;

-- Notifications per (channel, status), kept by the triggers below in the transaction that
-- inserts, re-statuses or deletes a notification, so GetStats never counts the outbox.
CREATE TABLE IF NOT EXISTS notification_counts (
    channel TEXT NOT NULL,
    status  TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (channel, status)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS notification_counted AFTER INSERT ON notifications BEGIN
    INSERT INTO notification_counts (channel, status, count) VALUES (new.channel, new.status, 1)
        ON CONFLICT (channel, status) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS notification_recounted AFTER UPDATE OF status ON notifications
    WHEN old.status IS NOT new.status BEGIN
    UPDATE notification_counts SET count = count - 1 WHERE channel = old.channel AND status = old.status;
    INSERT INTO notification_counts (channel, status, count) VALUES (new.channel, new.status, 1)
        ON CONFLICT (channel, status) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS notification_uncounted AFTER DELETE ON notifications BEGIN
    UPDATE notification_counts SET count = count - 1 WHERE channel = old.channel AND status = old.status;
END;

CREATE TABLE IF NOT EXISTS attempts (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL,
    number          INTEGER NOT NULL,
    at              REAL NOT NULL,
    outcome         TEXT NOT NULL,
    status_code     INTEGER,
    detail          TEXT NOT NULL,
    duration_ms     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_notification ON attempts (notification_id, number);

-- What a channel remembers per incident and destination (Slack thread, email root, PD trigger).
CREATE TABLE IF NOT EXISTS channel_state (
    channel     TEXT NOT NULL,
    destination TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (channel, destination, incident_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS channel_state_incident ON channel_state (incident_id);  -- retention

-- Group notifications (actors/domain/grouping.py): one row per (destination, route, group
-- labels). id is the incident_id of the group's notifications, so they keep their order like
-- an incident's. open_id is the owed notification later events join, until its first attempt
-- closes it (and sets last_sent_at, from which the next one is due group_interval later, and
-- a reminder repeat_secs later while an incident of the group is active).
CREATE TABLE IF NOT EXISTS notification_groups (
    id           TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    destination  TEXT NOT NULL,
    route        TEXT NOT NULL,
    group_key    TEXT NOT NULL,
    open_id      TEXT,
    last_sent_at REAL,
    repeat_secs  REAL,
    UNIQUE (channel, destination, route, group_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notification_groups_open ON notification_groups (open_id) WHERE open_id IS NOT NULL;

-- The events each group notification carries (its incidents' snapshots are their timeline rows').
CREATE TABLE IF NOT EXISTS group_items (
    notification_id TEXT NOT NULL,
    timeline_id     INTEGER NOT NULL,
    incident_id     TEXT NOT NULL,
    PRIMARY KEY (notification_id, timeline_id)
) WITHOUT ROWID;

-- Silences (actors/domain/silences.py): matchers is a JSON list of matcher strings. released
-- is 1 once its end has been acted on (the open incidents it held were notified).
CREATE TABLE IF NOT EXISTS silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_at  REAL NOT NULL,
    ends_at    REAL NOT NULL,
    created_by TEXT NOT NULL,
    comment    TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    released   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
