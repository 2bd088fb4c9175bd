-- Monitoring history (issue 12). One series per (target, metric): the
-- server ('server', '') or a container (by its name, which a redeploy keeps
-- for the resource's service). Points are narrow rows keyed by series and
-- second, WITHOUT ROWID so each row costs only its key and value.
CREATE TABLE metric_series (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('server', 'container')),
    target TEXT NOT NULL,
    metric TEXT NOT NULL,
    UNIQUE (scope, target, metric)
);

-- Raw samples, one per collection tick, kept 24 h.
CREATE TABLE metric_points (
    series_id INTEGER NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, at)
) WITHOUT ROWID;

-- 1-minute buckets (kept 7 days) and 1-hour buckets (kept 90 days). Each
-- keeps average, minimum and maximum, so a spike survives the averaging,
-- and the sample count, so a coarser bucket averages by weight.
CREATE TABLE metric_rollups_1m (
    series_id INTEGER NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    avg REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (series_id, at)
) WITHOUT ROWID;

CREATE TABLE metric_rollups_1h (
    series_id INTEGER NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    avg REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (series_id, at)
) WITHOUT ROWID;
