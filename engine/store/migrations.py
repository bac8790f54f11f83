"""The store's schema, as the migrations that build it (`engine.store.schema` applies them)."""

from __future__ import annotations

# Version N of the schema = MIGRATIONS[:N] applied in order, all in one transaction. Append only;
# never edit a released entry (stores in the field are at its version already).
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: everything
        """CREATE TABLE studies (
            id INTEGER PRIMARY KEY,
            name TEXT UNIQUE,
            preset_name TEXT,
            preset_path TEXT,
            preset_text TEXT,
            strategy TEXT NOT NULL,
            seed INTEGER NOT NULL,
            baseline_json TEXT NOT NULL,
            spec_json TEXT NOT NULL,
            device TEXT,
            created TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            finished TEXT,
            error TEXT,
            metrics_gen INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE trials (
            id INTEGER PRIMARY KEY,
            study_id INTEGER NOT NULL REFERENCES studies(id),
            number INTEGER NOT NULL,
            config_json TEXT NOT NULL,
            seed INTEGER NOT NULL,
            replicate INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            torch_version TEXT,
            device TEXT,
            epochs_done INTEGER NOT NULL DEFAULT 0,
            train_loss REAL,
            val_loss REAL,
            val_acc REAL,
            diverged_epoch INTEGER,
            started TEXT,
            finished TEXT,
            UNIQUE (study_id, number)
        )""",
        # Rows go in write order: seq (a store-wide counter, the rowid) grows with every epoch
        # written, so a poller asks for "seq > what I saw" with one range scan of the study index,
        # and an epoch's inserts append instead of touching a page per trial (6x cheaper at 512
        # trials than clustering by trial). UNIQUE (epoch, trial_id) is ordered for the same reason.
        """CREATE TABLE metrics (
            seq INTEGER PRIMARY KEY,
            study_id INTEGER NOT NULL,
            trial_id INTEGER NOT NULL REFERENCES trials(id),
            epoch INTEGER NOT NULL,
            train_loss REAL,
            val_loss REAL,
            val_acc REAL,
            UNIQUE (epoch, trial_id)
        )""",
        "CREATE INDEX metrics_by_study ON metrics(study_id)",
        """CREATE TABLE weights (
            trial_id INTEGER PRIMARY KEY REFERENCES trials(id),
            blob BLOB NOT NULL
        )""",
        # The validation points of each dataset a study trains on, so that viewers (the app's
        # decision map) can draw them without generating data, which needs torch.
        """CREATE TABLE points (
            study_id INTEGER NOT NULL REFERENCES studies(id),
            data_json TEXT NOT NULL,
            blob BLOB NOT NULL,
            PRIMARY KEY (study_id, data_json)
        )""",
        """CREATE TABLE leases (
            study_id INTEGER PRIMARY KEY REFERENCES studies(id),
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            token TEXT NOT NULL,
            heartbeat REAL NOT NULL,
            started TEXT NOT NULL
        )""",
        """CREATE TABLE vault (
            study_id INTEGER PRIMARY KEY REFERENCES studies(id),
            trial_id INTEGER NOT NULL REFERENCES trials(id),
            trial_number INTEGER NOT NULL,
            config_json TEXT NOT NULL,
            test_acc REAL,
            test_loss REAL,
            val_acc REAL,
            created TEXT NOT NULL
        )""",
        """CREATE TABLE predictions (
            study_id INTEGER NOT NULL REFERENCES studies(id),
            param TEXT NOT NULL,
            best_value_json TEXT NOT NULL,
            effect_size TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (study_id, param)
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            study_id INTEGER REFERENCES studies(id),
            trials INTEGER NOT NULL,
            trial_steps INTEGER NOT NULL,
            seconds REAL NOT NULL,
            model_seconds REAL,
            device TEXT NOT NULL,
            created TEXT NOT NULL
        )""",
        "CREATE INDEX runs_by_device ON runs(device, id)",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO counters (name, value) VALUES ('metrics_seq', 0)",
    ),
    (  # 2: where a study trains (NULL: local), so that `resume` and the app use the same place
        "ALTER TABLE studies ADD COLUMN executor TEXT",
        "ALTER TABLE studies ADD COLUMN ray_address TEXT",
    ),
    (  # 3: fingerprints of the CSV files a study trains on (JSON list; NULL: none recorded), so
        # that the test vault can tell a file that changed since
        "ALTER TABLE studies ADD COLUMN data_files_json TEXT",
    ),
    (  # 4: the rounds of an adaptive study (seeds = "auto"): the seeds each reached, the
        # configurations (indices in plan order) it extended, the trials it added, and why
        """CREATE TABLE rounds (
            study_id INTEGER NOT NULL REFERENCES studies(id),
            number INTEGER NOT NULL,
            seeds INTEGER NOT NULL,
            configs_json TEXT NOT NULL,
            trials INTEGER NOT NULL,
            reason TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (study_id, number)
        )""",
    ),
]
