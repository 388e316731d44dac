//! The file position store under kill -9: the file is always whole and never older.

use std::process::{Command, Stdio};
use std::time::Duration;

use cdc::model::{Lsn, PgPosition, Position};
use cdc::positions::{FilePositionStore, PositionStore};

const WRITER_ENV: &str = "CDC_TEST_STORE_WRITER";

fn lsn_of(p: &Position) -> u64 {
    match p {
        Position::Postgres(p) => p.lsn.0,
        other => panic!("unexpected {other}"),
    }
}

/// Child process body: saves ever-increasing positions until killed.
#[test]
#[ignore = "run as a child process by kill_9_never_corrupts_or_rewinds"]
fn writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let store = FilePositionStore::new(&path, "writer");
        let mut lsn = store.load().await.unwrap().map(|p| lsn_of(&p)).unwrap_or(0);
        let first = lsn + 1;
        loop {
            lsn += 1;
            store.save(&Position::Postgres(PgPosition { lsn: Lsn(lsn), tx_lsn: None, snapshot: None })).await.unwrap();
            if lsn == first {
                // Tells the parent it is saving (the kill instant is counted from here). libtest
                // has written "test writer_child ... " on this line already.
                use std::io::Write;
                let mut out = std::io::stdout();
                let _ = writeln!(out, "saving");
                let _ = out.flush();
            }
        }
    });
}

#[test]
fn kill_9_never_corrupts_or_rewinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("positions.json");
    let mut last_seen = 0u64;
    let mut advanced = 0;
    for round in 0..40u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["writer_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed at a varying instant after it started saving (start-up time varies with load).
        let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let started = lines.map_while(Result::ok).any(|l| l.ends_with("saving"));
        if !started {
            let _ = child.kill();
            panic!("round {round}: the writer did not start saving");
        }
        std::thread::sleep(Duration::from_millis(1 + (round * 7919) % 40));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (p, _, name) = FilePositionStore::read(&path)
            .unwrap_or_else(|e| panic!("round {round}: file unreadable after kill -9: {e}"))
            .unwrap_or_else(|| panic!("round {round}: no file"));
        assert_eq!(name, "writer");
        let lsn = lsn_of(&p);
        assert!(lsn >= last_seen, "round {round}: position went back from {last_seen} to {lsn}");
        if lsn > last_seen {
            advanced += 1;
        }
        last_seen = lsn;
    }
    assert!(advanced >= 20, "the writer made progress in only {advanced} of 40 rounds");
}

#[tokio::test]
async fn save_never_moves_backward_but_reset_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilePositionStore::new(dir.path().join("p.json"), "t");
    let p = |n| Position::Postgres(PgPosition { lsn: Lsn(n), tx_lsn: None, snapshot: None });
    assert_eq!(store.load().await.unwrap(), None);
    assert!(store.save(&p(10)).await.unwrap());
    assert!(!store.save(&p(5)).await.unwrap());
    assert_eq!(store.load().await.unwrap(), Some(p(10)));
    // A fresh store instance reads the file, and still refuses to go back.
    let again = FilePositionStore::new(dir.path().join("p.json"), "t");
    assert!(!again.save(&p(9)).await.unwrap());
    again.reset(&p(3)).await.unwrap();
    assert_eq!(again.load().await.unwrap(), Some(p(3)));
    // Another engine's position is refused with a remedy.
    let err = again.save(&"mysql:file=b.000001:pos=4".parse().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("belongs to another source"), "{err}");
}

#[test]
fn corrupt_file_is_a_definite_error_with_a_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(&path, "{\"format\":1,").unwrap();
    let err = FilePositionStore::read(&path).unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("remedy"), "{err}");
}
