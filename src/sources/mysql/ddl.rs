//! Just enough of MySQL/MariaDB DDL to follow tables' columns through the binlog when the
//! server logs no column names (`binlog_row_metadata` MINIMAL, or MySQL 5.7): CREATE, ALTER,
//! RENAME and DROP TABLE, DROP DATABASE. A statement that may change columns in a way not
//! followed here comes back as [`Ddl::NotUnderstood`], and the caller re-reads that table
//! from the server instead of guessing.

use crate::model::TableId;

/// What one statement does to table definitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ddl {
    Create {
        table: TableId,
        columns: Vec<ColumnDecl>,
        key: Vec<String>,
        if_not_exists: bool,
    },
    CreateLike {
        table: TableId,
        like: TableId,
        if_not_exists: bool,
    },
    Alter {
        table: TableId,
        ops: Vec<AlterOp>,
    },
    Rename(Vec<(TableId, TableId)>),
    Drop(Vec<TableId>),
    DropDatabase(String),
    /// Changes no table's columns (indexes, grants, views, databases, TRUNCATE…).
    NoColumnChange,
    /// May change this table's columns (every table's when `None`) in a way not followed.
    NotUnderstood(Option<TableId>),
}

/// One column as declared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnDecl {
    pub name: String,
    /// Lower case, in `information_schema.COLUMNS.COLUMN_TYPE`'s form: `int unsigned`,
    /// `decimal(12,2)`, `enum('a','b')`.
    pub column_type: String,
    pub nullable: bool,
    /// From `CHARACTER SET` / `COLLATE` on the column or the table's default.
    pub charset: Option<String>,
    /// Declared `PRIMARY KEY` inline.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary_key: bool,
    /// A constant `DEFAULT` (number or string, as written); not expressions or NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    End,
    First,
    After(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterOp {
    Add {
        column: ColumnDecl,
        place: Place,
    },
    /// CHANGE and MODIFY (where `old` is the column's own name).
    Change {
        old: String,
        column: ColumnDecl,
        place: Place,
    },
    Drop(String),
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTable(TableId),
    AddPrimaryKey(Vec<String>),
    DropPrimaryKey,
    /// `CONVERT TO CHARACTER SET x`: every text column changes charset.
    ConvertCharset(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// Unquoted word: keyword or name.
    Word(String),
    /// Back-quoted name: never a keyword.
    Quoted(String),
    Str(String),
    Num(String),
    Punct(char),
}

/// Parses one statement; `default_db` is the session's database from the QUERY event.
pub fn parse(sql: &str, default_db: &str) -> Ddl {
    let toks = tokenize(sql);
    let mut p = Parser { toks: &toks, at: 0, db: default_db };
    p.statement().unwrap_or_else(|| p.not_understood())
}

fn tokenize(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let text = |from: usize, to: usize| String::from_utf8_lossy(&b[from..to.min(b.len())]).into_owned();
    while i < b.len() {
        let c = b[i];
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'#' => i = find(b, i, b"\n").map_or(b.len(), |e| e + 1),
            b'-' if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) => {
                i = find(b, i, b"\n").map_or(b.len(), |e| e + 1)
            }
            // Executable comments (`/*!50100 … */`, `/*M!100100 … */`) hold statement text.
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let exec = match (b.get(i + 2), b.get(i + 3)) {
                    (Some(b'!'), _) => Some(i + 3),
                    (Some(b'M'), Some(b'!')) => Some(i + 4),
                    _ => None,
                };
                match exec {
                    Some(mut j) => {
                        while b.get(j).is_some_and(u8::is_ascii_digit) {
                            j += 1;
                        }
                        i = j;
                    }
                    None => i = find(b, i + 2, b"*/").map_or(b.len(), |e| e + 2),
                }
            }
            b'*' if b.get(i + 1) == Some(&b'/') => i += 2, // end of an executable comment
            b'`' => {
                let mut name = Vec::new();
                i += 1;
                while i < b.len() {
                    if b[i] == b'`' {
                        if b.get(i + 1) == Some(&b'`') {
                            name.push(b'`');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    name.push(b[i]);
                    i += 1;
                }
                out.push(Tok::Quoted(String::from_utf8_lossy(&name).into_owned()));
            }
            b'\'' | b'"' => {
                let quote = c;
                let mut s = Vec::new();
                i += 1;
                while i < b.len() {
                    match b[i] {
                        q if q == quote && b.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2;
                        }
                        q if q == quote => {
                            i += 1;
                            break;
                        }
                        b'\\' if i + 1 < b.len() => {
                            s.push(match b[i + 1] {
                                b'n' => b'\n',
                                b't' => b'\t',
                                b'r' => b'\r',
                                b'0' => 0,
                                b'Z' => 26,
                                other => other,
                            });
                            i += 2;
                        }
                        other => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(String::from_utf8_lossy(&s).into_owned()));
            }
            b'0'..=b'9' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                    i += 1;
                }
                let t = text(start, i);
                // `1abc` is a name in MySQL.
                if t.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
                    out.push(Tok::Num(t));
                } else {
                    out.push(Tok::Word(t));
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
                    i += 1;
                }
                out.push(Tok::Word(text(start, i)));
            }
            _ => {
                out.push(Tok::Punct(c as char));
                i += 1;
            }
        }
    }
    out
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
    db: &'a str,
}

/// `None` from a parsing step: the statement is not in the form expected.
type Step<T> = Option<T>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw_at(&self, offset: usize, kw: &str) -> bool {
        matches!(self.toks.get(self.at + offset), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.at += 1;
        }
        yes
    }

    /// Eats the keywords in order, all or none.
    fn eat_kws(&mut self, kws: &[&str]) -> bool {
        if kws.iter().enumerate().all(|(n, kw)| self.is_kw_at(n, kw)) {
            self.at += kws.len();
            return true;
        }
        false
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.peek().cloned();
        self.at += 1;
        t
    }

    fn name(&mut self) -> Step<String> {
        match self.next()? {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            Tok::Str(s) => Some(s), // ANSI_QUOTES-style "name"
            _ => None,
        }
    }

    fn table(&mut self) -> Step<TableId> {
        let first = self.name()?;
        if self.eat_punct('.') {
            let name = self.name()?;
            return Some(TableId::new(first, name));
        }
        Some(TableId::new(self.db, first))
    }

    fn at_end(&self) -> bool {
        self.peek().is_none() || self.is_punct(';')
    }

    /// Skips to the next `,` or `)` at this nesting depth (not eaten).
    fn skip_item(&mut self) {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') if depth == 0 => return,
                Tok::Punct(')') => depth -= 1,
                Tok::Punct(',') if depth == 0 => return,
                Tok::Punct(';') if depth == 0 => return,
                _ => {}
            }
            self.at += 1;
        }
    }

    /// Skips a parenthesised group starting here, if any.
    fn skip_parens(&mut self) {
        if !self.is_punct('(') {
            return;
        }
        let mut depth = 0usize;
        while let Some(t) = self.next() {
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// PRIMARY/UNIQUE/FOREIGN KEY or CHECK: what may follow `CONSTRAINT [name]`.
    fn is_constraint_kind(&self) -> bool {
        ["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"].iter().any(|k| self.is_kw(k))
    }

    /// An index or other clause that declares no column. `PERIOD` and `SYSTEM` are not
    /// reserved words, so a column may be called that: only `PERIOD FOR` and `SYSTEM
    /// VERSIONING` count.
    fn is_index_clause(&self) -> bool {
        ["INDEX", "KEY", "FULLTEXT", "SPATIAL", "CONSTRAINT", "PARTITION"].iter().any(|k| self.is_kw(k))
            || (self.is_kw("PERIOD") && self.is_kw_at(1, "FOR"))
            || (self.is_kw("SYSTEM") && self.is_kw_at(1, "VERSIONING"))
    }

    fn not_understood(&self) -> Ddl {
        let mut p = Parser { toks: self.toks, at: 0, db: self.db };
        // Name the table when the statement starts the usual way.
        let table = (|| {
            if p.eat_kw("CREATE") {
                p.eat_kws(&["OR", "REPLACE"]);
            } else if p.eat_kw("ALTER") {
                p.eat_kw("ONLINE");
                p.eat_kw("IGNORE");
            } else {
                return None;
            }
            if !p.eat_kw("TABLE") {
                return None;
            }
            p.eat_kws(&["IF", "NOT", "EXISTS"]);
            p.eat_kws(&["IF", "EXISTS"]);
            p.table()
        })();
        Ddl::NotUnderstood(table)
    }

    fn statement(&mut self) -> Step<Ddl> {
        if self.eat_kw("CREATE") {
            let replace = self.eat_kws(&["OR", "REPLACE"]);
            if self.eat_kw("TEMPORARY") || !self.eat_kw("TABLE") {
                return Some(Ddl::NoColumnChange);
            }
            let if_not_exists = self.eat_kws(&["IF", "NOT", "EXISTS"]) && !replace;
            return self.create(if_not_exists);
        }
        if self.eat_kw("ALTER") {
            self.eat_kw("ONLINE");
            self.eat_kw("IGNORE");
            if !self.eat_kw("TABLE") {
                return Some(Ddl::NoColumnChange);
            }
            self.eat_kws(&["IF", "EXISTS"]);
            return self.alter();
        }
        if self.eat_kw("RENAME") {
            if !self.eat_kw("TABLE") && !self.eat_kw("TABLES") {
                return Some(Ddl::NoColumnChange);
            }
            self.eat_kws(&["IF", "EXISTS"]);
            let mut pairs = Vec::new();
            loop {
                let from = self.table()?;
                if !self.eat_kw("TO") {
                    return None;
                }
                pairs.push((from, self.table()?));
                if !self.eat_punct(',') {
                    break;
                }
            }
            return Some(Ddl::Rename(pairs));
        }
        if self.eat_kw("DROP") {
            if self.eat_kw("DATABASE") || self.eat_kw("SCHEMA") {
                self.eat_kws(&["IF", "EXISTS"]);
                return Some(Ddl::DropDatabase(self.name()?));
            }
            if self.eat_kw("TEMPORARY") || !self.eat_kw("TABLE") {
                return Some(Ddl::NoColumnChange);
            }
            self.eat_kws(&["IF", "EXISTS"]);
            let mut tables = vec![self.table()?];
            while self.eat_punct(',') {
                tables.push(self.table()?);
            }
            return Some(Ddl::Drop(tables));
        }
        Some(Ddl::NoColumnChange)
    }

    fn create(&mut self, if_not_exists: bool) -> Step<Ddl> {
        let table = self.table()?;
        let parenthesised_like = self.is_punct('(') && self.is_kw_at(1, "LIKE");
        if parenthesised_like {
            self.at += 1;
        }
        if self.eat_kw("LIKE") {
            let like = self.table()?;
            return Some(Ddl::CreateLike { table, like, if_not_exists });
        }
        if !self.eat_punct('(') {
            return None; // CREATE TABLE … SELECT without column definitions
        }
        let mut columns = Vec::new();
        let mut key = Vec::new();
        loop {
            if self.eat_kw("CONSTRAINT") && !self.is_constraint_kind() {
                self.name()?; // the constraint's name
            }
            if self.eat_kws(&["PRIMARY", "KEY"]) {
                key = self.key_columns()?;
            } else if self.is_constraint_kind() || self.is_index_clause() {
                self.skip_item();
            } else {
                columns.push(self.column()?);
            }
            if self.eat_punct(')') {
                break;
            }
            if !self.eat_punct(',') {
                return None;
            }
        }
        // Table options: only the default charset matters here.
        let mut default_charset = None;
        while !self.at_end() {
            if self.eat_kw("DEFAULT") {
                continue;
            }
            if self.eat_kws(&["CHARACTER", "SET"]) || self.eat_kw("CHARSET") {
                self.eat_punct('=');
                default_charset = self.name();
            } else if self.eat_kw("COLLATE") {
                self.eat_punct('=');
                if default_charset.is_none() {
                    default_charset = self.name().map(|c| charset_of_collation(&c));
                }
            } else {
                self.at += 1;
            }
        }
        if key.is_empty() {
            key = columns.iter().filter(|c| c.primary_key).map(|c| c.name.clone()).collect();
        }
        for c in columns.iter_mut() {
            if c.charset.is_none() && is_text_type(&c.column_type) {
                c.charset = default_charset.clone();
            }
            if key.contains(&c.name) {
                c.nullable = false;
            }
        }
        Some(Ddl::Create { table, columns, key, if_not_exists })
    }

    /// `(a, b(10), c DESC)` after PRIMARY KEY, with an optional index type first.
    fn key_columns(&mut self) -> Step<Vec<String>> {
        if self.eat_kw("USING") {
            self.next()?;
        }
        if !self.eat_punct('(') {
            return None;
        }
        let mut names = Vec::new();
        loop {
            names.push(self.name()?);
            self.skip_item();
            if self.eat_punct(')') {
                break;
            }
            if !self.eat_punct(',') {
                return None;
            }
        }
        self.skip_item();
        Some(names)
    }

    fn alter(&mut self) -> Step<Ddl> {
        let table = self.table()?;
        let mut ops = Vec::new();
        while !self.at_end() {
            self.alter_op(&mut ops)?;
            if !self.eat_punct(',') && !self.at_end() {
                // Partition clauses follow without a comma; anything else is not understood.
                if self.is_kw("PARTITION") || self.is_kw("REMOVE") {
                    break;
                }
                return None;
            }
        }
        Some(Ddl::Alter { table, ops })
    }

    fn alter_op(&mut self, ops: &mut Vec<AlterOp>) -> Step<()> {
        const TABLE_OPTIONS: &[&str] = &[
            "ENGINE",
            "AUTO_INCREMENT",
            "COMMENT",
            "ROW_FORMAT",
            "ALGORITHM",
            "LOCK",
            "FORCE",
            "KEY_BLOCK_SIZE",
            "STATS_PERSISTENT",
            "STATS_AUTO_RECALC",
            "STATS_SAMPLE_PAGES",
            "ENCRYPTION",
            "ENCRYPTED",
            "ENCRYPTION_KEY_ID",
            "PACK_KEYS",
            "CHECKSUM",
            "MAX_ROWS",
            "MIN_ROWS",
            "AVG_ROW_LENGTH",
            "TABLESPACE",
            "ENABLE",
            "DISABLE",
            "ORDER",
            "WITH",
            "WITHOUT",
            "PARTITION",
            "REMOVE",
            "COALESCE",
            "REORGANIZE",
            "EXCHANGE",
            "ANALYZE",
            "CHECK",
            "OPTIMIZE",
            "REBUILD",
            "REPAIR",
            "TRUNCATE",
            "DISCARD",
            "IMPORT",
            "NOWAIT",
            "WAIT",
            "SECONDARY_ENGINE",
            "TRANSACTIONAL",
            "PAGE_CHECKSUM",
            "PAGE_COMPRESSED",
            "PAGE_COMPRESSION_LEVEL",
            "DELAY_KEY_WRITE",
            "INSERT_METHOD",
            "UNION",
            "DATA",
            "INDEX",
            "COMPRESSION",
            "CONNECTION",
            "PASSWORD",
            "STORAGE",
            "SEQUENCE",
            "IETF_QUOTES",
        ];
        if self.eat_kw("ADD") {
            let column_word = self.eat_kw("COLUMN");
            self.eat_kws(&["IF", "NOT", "EXISTS"]);
            if !column_word {
                if self.eat_kw("CONSTRAINT") {
                    self.eat_kws(&["IF", "NOT", "EXISTS"]);
                    if !self.is_constraint_kind() {
                        self.name()?;
                    }
                }
                if self.eat_kws(&["PRIMARY", "KEY"]) {
                    ops.push(AlterOp::AddPrimaryKey(self.key_columns()?));
                    return Some(());
                }
                if self.is_constraint_kind() || self.is_index_clause() {
                    self.skip_item();
                    return Some(());
                }
            }
            if self.eat_punct('(') {
                loop {
                    let column = self.column()?;
                    ops.push(AlterOp::Add { column, place: Place::End });
                    if self.eat_punct(')') {
                        return Some(());
                    }
                    if !self.eat_punct(',') {
                        return None;
                    }
                }
            }
            let column = self.column()?;
            let place = self.place()?;
            ops.push(AlterOp::Add { column, place });
            return Some(());
        }
        if self.eat_kw("DROP") {
            if self.eat_kws(&["PRIMARY", "KEY"]) {
                ops.push(AlterOp::DropPrimaryKey);
                return Some(());
            }
            if self.is_kw("FOREIGN") || self.is_kw("CHECK") || self.is_index_clause() {
                self.skip_item();
                return Some(());
            }
            self.eat_kw("COLUMN");
            self.eat_kws(&["IF", "EXISTS"]);
            ops.push(AlterOp::Drop(self.name()?));
            self.eat_kw("RESTRICT");
            self.eat_kw("CASCADE");
            return Some(());
        }
        if self.eat_kw("CHANGE") {
            self.eat_kw("COLUMN");
            self.eat_kws(&["IF", "EXISTS"]);
            let old = self.name()?;
            let column = self.column()?;
            let place = self.place()?;
            ops.push(AlterOp::Change { old, column, place });
            return Some(());
        }
        if self.eat_kw("MODIFY") {
            self.eat_kw("COLUMN");
            self.eat_kws(&["IF", "EXISTS"]);
            let column = self.column()?;
            let place = self.place()?;
            ops.push(AlterOp::Change { old: column.name.clone(), column, place });
            return Some(());
        }
        if self.eat_kw("RENAME") {
            if self.eat_kw("COLUMN") {
                self.eat_kws(&["IF", "EXISTS"]);
                let from = self.name()?;
                if !self.eat_kw("TO") {
                    return None;
                }
                ops.push(AlterOp::RenameColumn { from, to: self.name()? });
                return Some(());
            }
            if self.is_kw("INDEX") || self.is_kw("KEY") {
                self.skip_item();
                return Some(());
            }
            if !self.eat_kw("TO") {
                self.eat_kw("AS");
            }
            ops.push(AlterOp::RenameTable(self.table()?));
            return Some(());
        }
        if self.eat_kw("CONVERT") {
            if !self.eat_kw("TO") {
                return None;
            }
            if !self.eat_kws(&["CHARACTER", "SET"]) && !self.eat_kw("CHARSET") {
                return None;
            }
            let charset = self.name()?;
            ops.push(AlterOp::ConvertCharset(charset));
            self.skip_item();
            return Some(());
        }
        if self.eat_kw("ALTER") {
            // Defaults, visibility, index options: no column type or name changes.
            self.skip_item();
            return Some(());
        }
        if self.is_kw("DEFAULT") || self.is_kw("CHARACTER") || self.is_kw("CHARSET") || self.is_kw("COLLATE") {
            // The table's default charset: applies to columns added later, which name their
            // charset in the binlog's metadata or are re-read.
            self.skip_item();
            return Some(());
        }
        if TABLE_OPTIONS.iter().any(|k| self.is_kw(k)) {
            self.skip_item();
            return Some(());
        }
        None
    }

    fn place(&mut self) -> Step<Place> {
        if self.eat_kw("FIRST") {
            return Some(Place::First);
        }
        if self.eat_kw("AFTER") {
            return Some(Place::After(self.name()?));
        }
        Some(Place::End)
    }

    /// `name type [attributes]`, up to the next `,` or `)` at this depth (or FIRST/AFTER).
    fn column(&mut self) -> Step<ColumnDecl> {
        let name = self.name()?;
        let mut data_type = match self.next()? {
            Tok::Word(w) => w.to_ascii_lowercase(),
            _ => return None,
        };
        // Multi-word type names and synonyms, to information_schema's spelling.
        let mut args: Option<String> = None;
        let mut unsigned = false;
        let mut zerofill = false;
        let mut nullable = true;
        let mut primary_key = false;
        let mut default = None;
        let mut charset: Option<String> = None;
        match data_type.as_str() {
            "double" => {
                self.eat_kw("PRECISION");
            }
            "character" | "char" | "nchar" | "national" => {
                let word = if data_type == "national" { self.name()?.to_ascii_lowercase() } else { data_type };
                let varying = word == "varchar" || self.eat_kw("VARYING");
                data_type = if varying { "varchar".into() } else { "char".into() };
            }
            "nvarchar" => data_type = "varchar".into(),
            "long" => {
                data_type = if self.eat_kw("VARBINARY") {
                    "mediumblob".into()
                } else {
                    self.eat_kw("VARCHAR");
                    "mediumtext".into()
                };
            }
            "integer" | "int4" => data_type = "int".into(),
            "int1" => data_type = "tinyint".into(),
            "int2" => data_type = "smallint".into(),
            "int3" | "middleint" => data_type = "mediumint".into(),
            "int8" => data_type = "bigint".into(),
            "float4" => data_type = "float".into(),
            "float8" | "real" => data_type = "double".into(),
            "dec" | "numeric" | "fixed" => data_type = "decimal".into(),
            "bool" | "boolean" => {
                data_type = "tinyint".into();
                args = Some("1".into());
            }
            "serial" => {
                data_type = "bigint".into();
                unsigned = true;
                nullable = false;
            }
            _ => {}
        }
        if data_type == "double" {
            self.eat_kw("PRECISION");
        }
        if self.is_punct('(') {
            self.at += 1;
            let mut parts = Vec::new();
            loop {
                match self.next()? {
                    Tok::Num(n) => parts.push(n),
                    Tok::Str(s) => parts.push(format!("'{}'", s.replace('\'', "''"))),
                    Tok::Word(_) => continue, // charset introducer before an enum value: _utf8mb4'a'
                    _ => return None,
                }
                if self.eat_punct(')') {
                    break;
                }
                if !self.eat_punct(',') {
                    return None;
                }
            }
            args = Some(parts.join(","));
        }
        // FLOAT(p) with p > 24 is a DOUBLE; FLOAT(M,D) and DOUBLE(M,D) keep their type.
        if data_type == "float"
            && let Some(a) = &args
            && !a.contains(',')
        {
            if a.parse::<u32>().is_ok_and(|p| p > 24) {
                data_type = "double".into();
            }
            args = None;
        }
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') if depth == 0 => break,
                Tok::Punct(')') => depth -= 1,
                Tok::Punct(',' | ';') if depth == 0 => break,
                Tok::Word(w) if depth == 0 => {
                    let w = w.to_ascii_uppercase();
                    match w.as_str() {
                        "FIRST" | "AFTER" => break,
                        "UNSIGNED" => unsigned = true,
                        "ZEROFILL" => {
                            unsigned = true;
                            zerofill = true;
                        }
                        "NOT" if self.is_kw_at(1, "NULL") => {
                            nullable = false;
                            self.at += 1;
                        }
                        "NULL" => nullable = true,
                        "PRIMARY" => primary_key = true,
                        "KEY" if !matches!(self.toks.get(self.at.wrapping_sub(1)), Some(Tok::Word(p)) if p.eq_ignore_ascii_case("UNIQUE") || p.eq_ignore_ascii_case("PRIMARY")) => {
                            primary_key = true
                        }
                        "CHARACTER" if self.is_kw_at(1, "SET") => {
                            self.at += 2;
                            charset = self.name().map(|c| c.to_ascii_lowercase());
                            continue;
                        }
                        "CHARSET" => {
                            self.at += 1;
                            charset = self.name().map(|c| c.to_ascii_lowercase());
                            continue;
                        }
                        "COLLATE" => {
                            self.at += 1;
                            let collation = self.name()?;
                            if charset.is_none() {
                                charset = Some(charset_of_collation(&collation));
                            }
                            continue;
                        }
                        "DEFAULT" | "ON" => {
                            // DEFAULT NULL, DEFAULT (expr), ON UPDATE CURRENT_TIMESTAMP(6): a
                            // value, not an attribute; a constant one is kept.
                            self.at += 1;
                            if w == "DEFAULT" {
                                default = match (self.peek(), self.toks.get(self.at + 1)) {
                                    (Some(Tok::Str(v) | Tok::Num(v)), _) => Some(v.clone()),
                                    (Some(Tok::Punct('-')), Some(Tok::Num(v))) => {
                                        self.at += 1;
                                        Some(format!("-{v}"))
                                    }
                                    _ => None,
                                };
                            }
                            self.eat_kw("UPDATE");
                            if !self.is_punct('(') {
                                self.next();
                            }
                            self.skip_parens();
                            continue;
                        }
                        "REFERENCES" | "CHECK" | "GENERATED" | "AS" => {
                            // Expressions and ON DELETE SET NULL: nothing more about the column's type.
                            self.skip_item();
                            continue;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        let mut column_type = data_type.clone();
        if let Some(a) = args {
            column_type = format!("{column_type}({a})");
        }
        if unsigned && is_numeric_type(&data_type) {
            column_type.push_str(" unsigned");
        }
        if zerofill && is_numeric_type(&data_type) {
            column_type.push_str(" zerofill");
        }
        if ["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"].contains(&data_type.as_str()) {
            charset = None;
        }
        if primary_key {
            nullable = false;
        }
        Some(ColumnDecl { name, column_type, nullable, charset, primary_key, default })
    }
}

/// `utf8mb4_general_ci` → `utf8mb4`.
fn charset_of_collation(collation: &str) -> String {
    let lower = collation.to_ascii_lowercase();
    match lower.split_once('_') {
        Some((cs, _)) => cs.to_string(),
        None => lower,
    }
}

fn is_numeric_type(data_type: &str) -> bool {
    ["tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float", "double"].contains(&data_type)
}

fn is_text_type(column_type: &str) -> bool {
    let data_type = column_type.split(['(', ' ']).next().unwrap_or("");
    ["char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"].contains(&data_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, column_type: &str, nullable: bool, charset: Option<&str>) -> ColumnDecl {
        ColumnDecl {
            name: name.into(),
            column_type: column_type.into(),
            nullable,
            charset: charset.map(String::from),
            primary_key: false,
            default: None,
        }
    }

    fn t(db: &str, name: &str) -> TableId {
        TableId::new(db, name)
    }

    #[test]
    fn create_table_as_mysqldump_writes_it() {
        let sql = "CREATE TABLE `shop`.`order items` (
          `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
          `sku` varchar(64) CHARACTER SET latin1 COLLATE latin1_bin DEFAULT NULL COMMENT 'a, b',
          `price` decimal(12,2) NOT NULL DEFAULT '0.00',
          `state` enum('new','it''s done','a,b') DEFAULT 'new',
          `at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
          `raw` varbinary(16),
          `n` INTEGER ZEROFILL,
          `ok` BOOLEAN,
          `nv` NATIONAL VARCHAR(5),
          `cv` CHARACTER VARYING(7),
          `total` double GENERATED ALWAYS AS (`price` * 2) VIRTUAL,
          `parent` int REFERENCES p (id) ON DELETE SET NULL,
          PRIMARY KEY (`id`),
          KEY `sku` (`sku`(10)),
          CONSTRAINT `fk` FOREIGN KEY (`parent`) REFERENCES `p` (`id`)
        ) ENGINE=InnoDB /*!50100 DEFAULT CHARSET=utf8mb4 */ COLLATE=utf8mb4_general_ci";
        let Ddl::Create { table, columns, key, if_not_exists } = parse(sql, "other") else { panic!() };
        assert_eq!(table, t("shop", "order items"));
        assert!(!if_not_exists);
        assert_eq!(key, ["id"]);
        assert_eq!(
            columns,
            [
                col("id", "bigint(20) unsigned", false, None),
                col("sku", "varchar(64)", true, Some("latin1")),
                ColumnDecl { default: Some("0.00".into()), ..col("price", "decimal(12,2)", false, None) },
                ColumnDecl {
                    default: Some("new".into()),
                    ..col("state", "enum('new','it''s done','a,b')", true, Some("utf8mb4"))
                },
                col("at", "datetime(6)", false, None),
                col("raw", "varbinary(16)", true, None),
                col("n", "int unsigned zerofill", true, None),
                col("ok", "tinyint(1)", true, None),
                col("nv", "varchar(5)", true, Some("utf8mb4")),
                col("cv", "varchar(7)", true, Some("utf8mb4")),
                col("total", "double", true, None),
                col("parent", "int", true, None),
            ]
        );
    }

    #[test]
    fn create_table_forms() {
        assert_eq!(
            parse("create table if not exists t (a int primary key, b text) default charset latin1", "d"),
            Ddl::Create {
                table: t("d", "t"),
                columns: vec![
                    ColumnDecl { primary_key: true, ..col("a", "int", false, None) },
                    col("b", "text", true, Some("latin1"))
                ],
                key: vec!["a".into()],
                if_not_exists: true
            }
        );
        assert_eq!(
            parse("CREATE TABLE t2 LIKE d1.t1", "d"),
            Ddl::CreateLike { table: t("d", "t2"), like: t("d1", "t1"), if_not_exists: false }
        );
        assert_eq!(
            parse("CREATE TABLE t2 (LIKE t1)", "d"),
            Ddl::CreateLike { table: t("d", "t2"), like: t("d", "t1"), if_not_exists: false }
        );
        assert_eq!(parse("CREATE TABLE t3 AS SELECT * FROM t1", "d"), Ddl::NotUnderstood(Some(t("d", "t3"))));
        assert_eq!(parse("CREATE TEMPORARY TABLE x (a int)", "d"), Ddl::NoColumnChange);
        assert_eq!(parse("CREATE INDEX i ON t (a)", "d"), Ddl::NoColumnChange);
        let Ddl::Create { key, .. } =
            parse("CREATE TABLE t (a int, b int, CONSTRAINT pk PRIMARY KEY USING BTREE (b, a))", "d")
        else {
            panic!()
        };
        assert_eq!(key, ["b", "a"]);
    }

    #[test]
    fn alter_table_operations() {
        let sql = "ALTER TABLE d.t ADD COLUMN c1 INT UNSIGNED NOT NULL AFTER id, ADD c0 char(2) FIRST, \
                   DROP COLUMN old, DROP x, CHANGE `a` `b` bigint, MODIFY c varchar(10) CHARSET utf8mb4, \
                   RENAME COLUMN p TO q, ADD INDEX (c), DROP INDEX i, ALTER COLUMN z SET DEFAULT 1, \
                   ADD PRIMARY KEY (c1), DROP PRIMARY KEY, ENGINE=InnoDB, ALGORITHM=INPLACE, LOCK=NONE, \
                   ADD (m int, n int), RENAME TO d.t2";
        let Ddl::Alter { table, ops } = parse(sql, "x") else { panic!("{:?}", parse(sql, "x")) };
        assert_eq!(table, t("d", "t"));
        assert_eq!(
            ops,
            [
                AlterOp::Add { column: col("c1", "int unsigned", false, None), place: Place::After("id".into()) },
                AlterOp::Add { column: col("c0", "char(2)", true, None), place: Place::First },
                AlterOp::Drop("old".into()),
                AlterOp::Drop("x".into()),
                AlterOp::Change { old: "a".into(), column: col("b", "bigint", true, None), place: Place::End },
                AlterOp::Change {
                    old: "c".into(),
                    column: col("c", "varchar(10)", true, Some("utf8mb4")),
                    place: Place::End
                },
                AlterOp::RenameColumn { from: "p".into(), to: "q".into() },
                AlterOp::AddPrimaryKey(vec!["c1".into()]),
                AlterOp::DropPrimaryKey,
                AlterOp::Add { column: col("m", "int", true, None), place: Place::End },
                AlterOp::Add { column: col("n", "int", true, None), place: Place::End },
                AlterOp::RenameTable(t("d", "t2")),
            ]
        );
        assert_eq!(
            parse("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", "d"),
            Ddl::Alter { table: t("d", "t"), ops: vec![AlterOp::ConvertCharset("utf8mb4".into())] }
        );
        assert_eq!(
            parse("ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4", "d"),
            Ddl::Alter { table: t("d", "t"), ops: vec![] }
        );
        assert_eq!(parse("ALTER TABLE t FROBNICATE a", "d"), Ddl::NotUnderstood(Some(t("d", "t"))));
        assert_eq!(parse("ALTER DATABASE d CHARACTER SET latin1", "d"), Ddl::NoColumnChange);
    }

    #[test]
    fn rename_drop_and_others() {
        assert_eq!(
            parse("RENAME TABLE a TO b, x.c TO y.c", "d"),
            Ddl::Rename(vec![(t("d", "a"), t("d", "b")), (t("x", "c"), t("y", "c"))])
        );
        assert_eq!(
            parse("DROP TABLE IF EXISTS `a`,b.`c` /* generated by server */", "d"),
            Ddl::Drop(vec![t("d", "a"), t("b", "c")])
        );
        assert_eq!(parse("drop database if exists shop", "d"), Ddl::DropDatabase("shop".into()));
        assert_eq!(parse("DROP TEMPORARY TABLE IF EXISTS t", "d"), Ddl::NoColumnChange);
        assert_eq!(parse("TRUNCATE TABLE t", "d"), Ddl::NoColumnChange);
        assert_eq!(parse("GRANT SELECT ON *.* TO x", "d"), Ddl::NoColumnChange);
        assert_eq!(parse("# comment\nDROP TABLE t", "d"), Ddl::Drop(vec![t("d", "t")]));
        // Garbage never panics.
        for sql in ["ALTER TABLE", "CREATE TABLE t (", "CREATE TABLE t (a enum(", "RENAME TABLE a", "ALTER TABLE `x"] {
            let _ = parse(sql, "d");
        }
    }

    proptest::proptest! {
        /// Any sequence of DDL-ish tokens parses to some answer without panicking.
        #[test]
        fn never_panics(words in proptest::collection::vec(proptest::sample::select(vec![
            "CREATE", "ALTER", "TABLE", "DROP", "RENAME", "ADD", "COLUMN", "CHANGE", "MODIFY", "PRIMARY", "KEY",
            "IF", "NOT", "EXISTS", "TO", "AFTER", "FIRST", "DEFAULT", "NULL", "ON", "UPDATE", "CONSTRAINT",
            "CHARACTER", "SET", "COLLATE", "LIKE", "INT", "enum", "varchar", "national", "long", "t", "`x`",
            "'s'", "1", "(", ")", ",", ".", ";", "/*!", "*/", "--", "#", "\n",
        ]), 0..40)) {
            let _ = parse(&words.join(" "), "d");
            let _ = parse(&words.concat(), "d");
        }
    }
}
