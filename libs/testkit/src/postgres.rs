//! A database of its own in the machine's PostgreSQL, for a test that runs the API as a
//! process: created empty (the API migrates it), dropped when the guard goes. Named
//! `chorus_test_<pid>_<tag>` like the API's own tests' databases, whose sweep removes it if
//! the test dies first.

use std::process::Command;

pub struct ScratchDb {
    admin: String,
    name: String,
}

impl ScratchDb {
    pub fn create(tag: &str) -> ScratchDb {
        let admin = std::env::var("CHORUS_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let db = ScratchDb {
            name: format!("chorus_test_{}_{tag}", std::process::id()),
            admin,
        };
        db.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        assert!(
            db.psql(&format!("CREATE DATABASE {}", db.name)),
            "creating {} in {}",
            db.name,
            db.admin
        );
        db
    }

    /// The database's URL, for `database_url`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.admin, self.name)
    }

    fn psql(&self, sql: &str) -> bool {
        Command::new("psql")
            .args([&self.admin, "-q", "-c", sql])
            .output()
            .expect("psql is installed (Debian's postgresql-client)")
            .status
            .success()
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
