//! A decoder of PostgreSQL's `pgoutput` logical replication messages,
//! protocol version 1 (the format is documented in the PostgreSQL manual,
//! "Logical Replication Message Formats"). Only what change capture reads:
//! transaction bounds, relations and row changes; values arrive as text.

/// PostgreSQL's epoch (2000-01-01) in microseconds after the Unix epoch.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// One column of a relation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RelColumn {
    /// The column name.
    pub name: String,
    /// Part of the replica identity (the primary key by default).
    pub key: bool,
}

/// A table as the decoder describes it before its first change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Relation {
    /// The table's oid (what row changes name).
    pub id: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its columns in table order.
    pub columns: Vec<RelColumn>,
}

/// One column value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// SQL `NULL`.
    Null,
    /// A TOASTed value the change did not touch (not sent).
    Unchanged,
    /// The value in the type's text output.
    Text(String),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// A transaction starts; it committed at `commit_time_micros` (Unix µs).
    Begin { commit_time_micros: i64 },
    /// The transaction ends; the slot may advance to `end_lsn`.
    Commit { end_lsn: u64 },
    /// A relation's description.
    Relation(Relation),
    /// A row inserted.
    Insert { rel: u32, new: Vec<Cell> },
    /// A row updated; `old` holds the old key (or whole row under
    /// `REPLICA IDENTITY FULL`) when sent.
    Update {
        rel: u32,
        old: Option<Vec<Cell>>,
        new: Vec<Cell>,
    },
    /// A row deleted; `old` holds its key (or whole row).
    Delete { rel: u32, old: Vec<Cell> },
    /// Anything else (origin, type, truncate, logical message).
    Other(u8),
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| {
            format!(
                "a pgoutput message ends early (wanted {n} bytes at offset {})",
                self.at
            )
        })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn cstr(&mut self) -> Result<String, String> {
        let rest = &self.buf[self.at..];
        let nul = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or("a pgoutput string has no terminating NUL")?;
        let s = String::from_utf8(rest[..nul].to_vec())
            .map_err(|_| "a pgoutput string is not UTF-8".to_string())?;
        self.at += nul + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Cell>, String> {
        let n = self.u16()?;
        (0..n)
            .map(|_| match self.u8()? {
                b'n' => Ok(Cell::Null),
                b'u' => Ok(Cell::Unchanged),
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?;
                    String::from_utf8(bytes.to_vec())
                        .map(Cell::Text)
                        .map_err(|_| "a pgoutput text value is not UTF-8".to_string())
                }
                other => Err(format!(
                    "pgoutput column kind {:?} is not text, null or unchanged (binary mode is not asked for)",
                    other as char
                )),
            })
            .collect()
    }
}

/// Decodes one `pgoutput` message (one row of
/// `pg_logical_slot_peek_binary_changes`).
pub(crate) fn decode(buf: &[u8]) -> Result<Message, String> {
    let mut r = Reader { buf, at: 0 };
    let tag = r.u8()?;
    Ok(match tag {
        b'B' => {
            let _final_lsn = r.u64()?;
            let t = r.u64()? as i64;
            let _xid = r.u32()?;
            Message::Begin {
                commit_time_micros: t.saturating_add(PG_EPOCH_UNIX_MICROS),
            }
        }
        b'C' => {
            let _flags = r.u8()?;
            let _commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            Message::Commit { end_lsn }
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let _identity = r.u8()?;
            let n = r.u16()?;
            let columns = (0..n)
                .map(|_| {
                    let flags = r.u8()?;
                    let name = r.cstr()?;
                    let _type = r.u32()?;
                    let _typmod = r.u32()?;
                    Ok(RelColumn {
                        name,
                        key: flags & 1 == 1,
                    })
                })
                .collect::<Result<_, String>>()?;
            Message::Relation(Relation {
                id,
                namespace,
                name,
                columns,
            })
        }
        b'I' => {
            let rel = r.u32()?;
            expect(r.u8()?, b'N')?;
            Message::Insert {
                rel,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            expect(kind, b'N')?;
            Message::Update {
                rel,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(format!(
                    "a pgoutput delete carries {:?}, not the old key or row",
                    kind as char
                ));
            }
            Message::Delete {
                rel,
                old: r.tuple()?,
            }
        }
        other => Message::Other(other),
    })
}

fn expect(got: u8, want: u8) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "a pgoutput row change carries {:?} where {:?} belongs",
            got as char, want as char
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Vec<u8> {
        let mut v = vec![b't'];
        v.extend((s.len() as u32).to_be_bytes());
        v.extend(s.as_bytes());
        v
    }

    #[test]
    fn decodes_relation_insert_update_delete_and_commit() {
        let mut rel = vec![b'R'];
        rel.extend(16384u32.to_be_bytes());
        rel.extend(b"public\0item\0");
        rel.push(b'f');
        rel.extend(2u16.to_be_bytes());
        for (flag, name) in [(1u8, "id"), (0, "n")] {
            rel.push(flag);
            rel.extend(name.as_bytes());
            rel.push(0);
            rel.extend(25u32.to_be_bytes());
            rel.extend(u32::MAX.to_be_bytes());
        }
        let Message::Relation(r) = decode(&rel).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!((r.id, r.name.as_str(), r.columns.len()), (16384, "item", 2));
        assert!(r.columns[0].key && !r.columns[1].key);

        let mut ins = vec![b'I'];
        ins.extend(16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(2u16.to_be_bytes());
        ins.extend(text("a"));
        ins.push(b'n');
        assert_eq!(
            decode(&ins).unwrap(),
            Message::Insert {
                rel: 16384,
                new: vec![Cell::Text("a".into()), Cell::Null]
            }
        );

        let mut upd = vec![b'U'];
        upd.extend(16384u32.to_be_bytes());
        upd.push(b'O');
        upd.extend(2u16.to_be_bytes());
        upd.extend(text("a"));
        upd.extend(text("1"));
        upd.push(b'N');
        upd.extend(2u16.to_be_bytes());
        upd.extend(text("a"));
        upd.push(b'u');
        let Message::Update { old, new, .. } = decode(&upd).unwrap() else {
            panic!("not an update")
        };
        assert_eq!(old.unwrap()[1], Cell::Text("1".into()));
        assert_eq!(new[1], Cell::Unchanged);

        let mut del = vec![b'D'];
        del.extend(16384u32.to_be_bytes());
        del.push(b'K');
        del.extend(1u16.to_be_bytes());
        del.extend(text("a"));
        assert!(matches!(decode(&del).unwrap(), Message::Delete { .. }));

        let mut commit = vec![b'C', 0];
        commit.extend(10u64.to_be_bytes());
        commit.extend(42u64.to_be_bytes());
        commit.extend(0u64.to_be_bytes());
        assert_eq!(decode(&commit).unwrap(), Message::Commit { end_lsn: 42 });
        assert!(decode(&commit[..5]).unwrap_err().contains("ends early"));
    }
}
