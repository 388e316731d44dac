//! Position text forms, ordering and GTID-set arithmetic, and the stored formats.

use std::cmp::Ordering;

use cdc::model::{GtidSet, MariaDbGtid, MariaDbGtidList, MySqlGtidSet, Position};
use cdc::positions::FilePositionStore;

const UUID_A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

fn pos(text: &str) -> Position {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn golden_positions_parse_and_print_unchanged() {
    let text = include_str!("golden/positions-v1.txt");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        assert_eq!(pos(line).to_string(), line);
        // And through serde, as the position file stores it.
        let json = serde_json::to_string(&pos(line)).unwrap();
        assert_eq!(json, format!("\"{line}\""));
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), pos(line));
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn golden_position_file_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/positions-file-v1.json");
    let (p, saved_at, name) = FilePositionStore::read(path.as_ref()).unwrap().unwrap();
    assert_eq!(p.to_string(), format!("mysql:file=binlog.000003:pos=1547:gtid={UUID_A}:1-42"));
    assert_eq!(saved_at, 1_763_769_600_000);
    assert_eq!(name, "shop");
}

#[test]
fn server_forms_are_normalised() {
    // Upper-case UUIDs, line-wrapped sets, unsorted and overlapping intervals, as servers print them.
    let p = pos(&format!("mysql:gtid={}:7-9:1-5:4-6,\n {UUID_A}:12", UUID_A.to_uppercase()));
    assert_eq!(p.to_string(), format!("mysql:gtid={UUID_A}:1-9:12"));
    assert_eq!(pos("pg:lsn=0/16b3748").to_string(), "pg:lsn=0/16B3748");
}

#[test]
fn malformed_positions_are_errors() {
    for bad in [
        "",
        "pg:",
        "pg:lsn=16B3748",
        "pg:lsn=0/XYZ",
        "pg:lsn=123456789/0",
        "mysql:",
        "mysql:file=binlog.000003",
        "mysql:file=binlog.000003:pos=abc",
        "mysql:file=:pos=4",
        "mysql:gtid=not-a-uuid:1-5",
        "mysql:gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562",
        "mysql:gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:0-5",
        "mysql:gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:9-5",
        "mysql:gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:9tag:1",
        "mysql:gtid=0-1-100,0-2-200",
        "mysql:gtid=0-1",
        "mysql:file=b.1:pos=4:junk",
        "oracle:scn=5",
    ] {
        assert!(bad.parse::<Position>().is_err(), "`{bad}` parsed");
    }
}

#[test]
fn ordering_within_one_engine() {
    assert_eq!(pos("pg:lsn=0/10").compare(&pos("pg:lsn=0/F")), Ok(Ordering::Greater));
    assert_eq!(pos("pg:lsn=1/0").compare(&pos("pg:lsn=0/FFFFFFFF")), Ok(Ordering::Greater));
    let a = pos("mysql:file=binlog.000009:pos=900");
    let b = pos("mysql:file=binlog.000010:pos=4");
    assert_eq!(a.compare(&b), Ok(Ordering::Less));
    assert_eq!(b.compare(&a), Ok(Ordering::Greater));
    assert_eq!(a.compare(&a), Ok(Ordering::Equal));
    let g1 = pos(&format!("mysql:gtid={UUID_A}:1-5"));
    let g2 = pos(&format!("mysql:gtid={UUID_A}:1-6"));
    assert_eq!(g1.compare(&g2), Ok(Ordering::Less));
    assert_eq!(pos("mysql:gtid=0-1-5,1-1-9").compare(&pos("mysql:gtid=0-1-6,1-1-9")), Ok(Ordering::Less));
}

#[test]
fn incomparable_positions_are_errors_not_panics() {
    let mysql = pos("mysql:file=binlog.000001:pos=4");
    let pg = pos("pg:lsn=0/1");
    assert!(mysql.compare(&pg).is_err());
    assert!(pg.compare(&mysql).is_err());
    // Another binlog series.
    assert!(mysql.compare(&pos("mysql:file=other.000001:pos=4")).is_err());
    // Diverged GTID sets.
    let a = pos(&format!("mysql:gtid={UUID_A}:1-5"));
    let b = pos("mysql:gtid=4e11fa47-71ca-11e1-9e33-c80aa9429562:1-5");
    assert!(a.compare(&b).is_err());
    // MySQL set against MariaDB list.
    assert!(a.compare(&pos("mysql:gtid=0-1-5")).is_err());
}

#[test]
fn mysql_gtid_set_arithmetic() {
    let mut s: MySqlGtidSet = format!("{UUID_A}:1-3").parse().unwrap();
    s.add(UUID_A, "", 5).unwrap();
    assert_eq!(s.to_string(), format!("{UUID_A}:1-3:5"));
    s.add(UUID_A, "", 4).unwrap(); // fills the hole: intervals merge
    assert_eq!(s.to_string(), format!("{UUID_A}:1-5"));
    s.add(UUID_A, "mytag", 1).unwrap();
    assert_eq!(s.to_string(), format!("{UUID_A}:1-5:mytag:1"));
    assert!(s.contains_gtid(UUID_A, "mytag", 1));
    assert!(!s.contains_gtid(UUID_A, "", 6));
    assert!(s.add(UUID_A, "", 0).is_err());
    assert!(s.add("bad", "", 1).is_err());

    let other: MySqlGtidSet = format!("{UUID_A}:7-9,4e11fa47-71ca-11e1-9e33-c80aa9429562:1").parse().unwrap();
    let small: MySqlGtidSet = format!("{UUID_A}:2-3").parse().unwrap();
    assert!(s.contains(&small));
    assert!(!small.contains(&s));
    assert!(!s.contains(&other));
    let mut u = s.clone();
    u.union_with(&other);
    assert_eq!(u.to_string(), format!("{UUID_A}:1-5:7-9:mytag:1,4e11fa47-71ca-11e1-9e33-c80aa9429562:1"));
    assert!(u.contains(&s) && u.contains(&other));
    // Adjacent intervals merge on union.
    let mut v: MySqlGtidSet = format!("{UUID_A}:1-5").parse().unwrap();
    v.union_with(&format!("{UUID_A}:6-8").parse().unwrap());
    assert_eq!(v.to_string(), format!("{UUID_A}:1-8"));
}

#[test]
fn mariadb_gtid_list_arithmetic() {
    let mut l: MariaDbGtidList = "0-1-100,1-2-7".parse().unwrap();
    l.add(MariaDbGtid { domain: 0, server_id: 3, seq: 101 });
    l.add(MariaDbGtid { domain: 0, server_id: 1, seq: 50 }); // older: ignored
    l.add("2-1-1".parse().unwrap());
    assert_eq!(l.to_string(), "0-3-101,1-2-7,2-1-1");
    let older: MariaDbGtidList = "0-1-99,1-2-7".parse().unwrap();
    assert!(l.contains(&older));
    assert!(!older.contains(&l));
    let set = GtidSet::MariaDb(older.clone());
    let u = set.union(&GtidSet::MariaDb("1-2-9,5-5-5".parse().unwrap())).unwrap();
    assert_eq!(u.to_string(), "0-1-99,1-2-9,5-5-5");
    assert!(set.union(&GtidSet::parse(&format!("{UUID_A}:1")).unwrap()).is_err());
}
