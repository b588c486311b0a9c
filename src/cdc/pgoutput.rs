//! Decoding the few pgoutput messages the connector needs.
//!
//! pgwire-replication speaks the replication protocol and itself surfaces
//! Begin, Commit and logical decoding Messages as events; row changes reach
//! the connector as raw pgoutput bytes (`XLogData`). This module decodes the
//! two row messages a capture needs, in protocol version 1 (PostgreSQL docs,
//! "Logical Replication Message Formats"):
//!
//! ```text
//! Relation  'R' id:u32 namespace:cstr name:cstr replident:u8 ncols:u16
//!               ncols × (flags:u8 name:cstr type_oid:u32 typmod:i32)
//! Insert    'I' relation:u32 'N' TupleData
//! TupleData ncols:u16  ncols × ('n' | 'u' | 't' len:u32 bytes | 'b' len:u32 bytes)
//! ```
//!
//! Every other message (Type, Origin, Update, Delete, Truncate, and the
//! streaming messages of later protocol versions) is [`PgOutput::Other`]:
//! the connector's publications only ever publish inserts.

use std::collections::HashMap;

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgOutput {
    /// A table's description, sent before its first change in a session.
    Relation(Relation),
    /// A new row.
    Insert(Insert),
    /// A message the connector does not need, by its tag byte.
    Other(u8),
}

/// A table as a Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The relation's OID, which later Insert messages refer to.
    pub id: u32,
    /// The schema (empty for `pg_catalog`).
    pub namespace: String,
    pub name: String,
    /// Column names, in the order tuples list their values.
    pub columns: Vec<String>,
}

/// An Insert message: the new row of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub relation: u32,
    pub values: Vec<Value>,
}

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value (only in updates; listed for completeness).
    Unchanged,
    /// The value in text format (the default).
    Text(Vec<u8>),
    /// The value in binary format (only with the `binary` option).
    Binary(Vec<u8>),
}

/// Why a pgoutput message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the pgoutput message is empty")]
    Empty,
    #[error("the pgoutput {message} message ends before its {field}")]
    Truncated { message: &'static str, field: &'static str },
    #[error("the pgoutput {message} message has a {field} that is not UTF-8")]
    NotUtf8 { message: &'static str, field: &'static str },
    #[error("the pgoutput Insert message has tuple marker {0:#04x}, not 'N'")]
    NotANewTuple(u8),
    #[error("the pgoutput tuple has a column of unknown kind {0:#04x}")]
    UnknownColumnKind(u8),
}

/// Decodes one pgoutput message (the payload of an `XLogData`).
pub fn decode(data: &[u8]) -> Result<PgOutput, DecodeError> {
    let (&tag, rest) = data.split_first().ok_or(DecodeError::Empty)?;
    match tag {
        b'R' => decode_relation(&mut Reader::new(rest, "Relation")).map(PgOutput::Relation),
        b'I' => decode_insert(&mut Reader::new(rest, "Insert")).map(PgOutput::Insert),
        other => Ok(PgOutput::Other(other)),
    }
}

fn decode_relation(r: &mut Reader<'_>) -> Result<Relation, DecodeError> {
    let id = r.u32("relation id")?;
    let namespace = r.cstr("namespace")?;
    let name = r.cstr("relation name")?;
    let _replica_identity = r.u8("replica identity")?;
    let count = r.u16("column count")?;
    let mut columns = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let _flags = r.u8("column flags")?;
        columns.push(r.cstr("column name")?);
        let _type_oid = r.u32("column type")?;
        let _type_modifier = r.u32("column type modifier")?;
    }
    Ok(Relation { id, namespace, name, columns })
}

fn decode_insert(r: &mut Reader<'_>) -> Result<Insert, DecodeError> {
    let relation = r.u32("relation id")?;
    match r.u8("tuple marker")? {
        b'N' => {}
        other => return Err(DecodeError::NotANewTuple(other)),
    }
    let count = r.u16("column count")?;
    let mut values = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        values.push(match r.u8("column kind")? {
            b'n' => Value::Null,
            b'u' => Value::Unchanged,
            b't' => Value::Text(r.sized("column value")?.to_vec()),
            b'b' => Value::Binary(r.sized("column value")?.to_vec()),
            other => return Err(DecodeError::UnknownColumnKind(other)),
        });
    }
    Ok(Insert { relation, values })
}

/// The relations seen in one replication session, by id. pgoutput sends a
/// Relation before a table's first change in each session (and again after
/// the table's definition changes), so a new session starts with a new map.
#[derive(Debug, Default)]
pub struct Relations {
    by_id: HashMap<u32, Relation>,
}

impl Relations {
    pub fn remember(&mut self, relation: Relation) {
        self.by_id.insert(relation.id, relation);
    }

    pub fn get(&self, id: u32) -> Option<&Relation> {
        self.by_id.get(&id)
    }
}

impl Relation {
    /// True when this is `namespace.name`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }

    /// The text value of `column` in a row of this relation: `None` when
    /// the column does not exist, is NULL, or is not text.
    pub fn text<'a>(&self, insert: &'a Insert, column: &str) -> Option<&'a str> {
        let index = self.columns.iter().position(|c| c == column)?;
        match insert.values.get(index)? {
            Value::Text(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }
}

/// A cursor over a message's bytes, naming what it reads so that a
/// truncated message says where it ends.
struct Reader<'a> {
    bytes: &'a [u8],
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], message: &'static str) -> Reader<'a> {
        Reader { bytes, message }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated { message: self.message, field });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string.
    fn cstr(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let end =
            self.bytes.iter().position(|&b| b == 0).ok_or(DecodeError::Truncated { message: self.message, field })?;
        let text = self.take(end, field)?;
        self.take(1, field)?;
        String::from_utf8(text.to_vec()).map_err(|_| DecodeError::NotUtf8 { message: self.message, field })
    }

    /// A length-prefixed value (Int32 length, then that many bytes).
    fn sized(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixtures captured from PostgreSQL 15 with
    /// `pg_logical_slot_peek_binary_changes(slot, NULL, NULL, 'proto_version', '1',
    /// 'publication_names', ..., 'messages', 'true')` after one order
    /// (`dw_fixture.orders`, product 3, delta -2, quantity 998, version 1).
    const RELATION: &str = "520000400964775f66697874757265006f726465727300640006016f726465725f69640000000b86ffffffff0070726f647563745f69640000000017ffffffff0064656c74610000000017ffffffff007175616e746974790000000014ffffffff0076657273696f6e0000000014ffffffff00636f6d6d69747465645f617400000004a0ffffffff";
    const INSERT: &str = "49000040094e0006740000002436663163326134652d303030302d343030302d383030302d30303030303030303030326174000000013374000000022d3274000000033939387400000001317400000016323032342d30352d30312031323a30303a30302b3030";
    const BEGIN: &str = "420000000001da3c98000303c568758d04000002dc";
    const MESSAGE: &str = "4d010000000001da3c9864775f6669787475726500000000337b226f726465725f6964223a2236663163326134652d303030302d343030302d383030302d303030303030303030303261227d";
    const COMMIT: &str = "43000000000001da3c980000000001da3cc8000303c568758d04";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn relation() -> Relation {
        match decode(&hex(RELATION)).unwrap() {
            PgOutput::Relation(r) => r,
            other => panic!("expected a Relation, got {other:?}"),
        }
    }

    #[test]
    fn a_relation_names_its_table_and_columns() {
        let r = relation();
        assert_eq!(r.id, 0x4009);
        assert!(r.is("dw_fixture", "orders"));
        assert_eq!(r.columns, ["order_id", "product_id", "delta", "quantity", "version", "committed_at"]);
    }

    #[test]
    fn an_insert_carries_text_values_in_column_order() {
        let PgOutput::Insert(insert) = decode(&hex(INSERT)).unwrap() else { panic!("expected an Insert") };
        assert_eq!(insert.relation, 0x4009);
        let r = relation();
        assert_eq!(r.text(&insert, "order_id"), Some("6f1c2a4e-0000-4000-8000-00000000002a"));
        assert_eq!(r.text(&insert, "product_id"), Some("3"));
        assert_eq!(r.text(&insert, "delta"), Some("-2"));
        assert_eq!(r.text(&insert, "quantity"), Some("998"));
        assert_eq!(r.text(&insert, "version"), Some("1"));
        assert_eq!(r.text(&insert, "committed_at"), Some("2024-05-01 12:00:00+00"));
        assert_eq!(r.text(&insert, "no_such_column"), None);
    }

    #[test]
    fn begin_commit_and_message_are_left_to_the_library() {
        // pgwire-replication surfaces these as events of their own.
        assert_eq!(decode(&hex(BEGIN)).unwrap(), PgOutput::Other(b'B'));
        assert_eq!(decode(&hex(COMMIT)).unwrap(), PgOutput::Other(b'C'));
        assert_eq!(decode(&hex(MESSAGE)).unwrap(), PgOutput::Other(b'M'));
    }

    #[test]
    fn nulls_and_binary_values() {
        let mut bytes = vec![b'I', 0, 0, 0, 7, b'N', 0, 3, b'n', b'u', b'b', 0, 0, 0, 2, 0xca, 0xfe];
        let PgOutput::Insert(insert) = decode(&bytes).unwrap() else { panic!("expected an Insert") };
        assert_eq!(insert.values, [Value::Null, Value::Unchanged, Value::Binary(vec![0xca, 0xfe])]);
        bytes[10] = b'x';
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownColumnKind(b'x')));
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        for fixture in [RELATION, INSERT] {
            let bytes = hex(fixture);
            for len in 1..bytes.len() {
                assert!(matches!(decode(&bytes[..len]), Err(DecodeError::Truncated { .. })), "{fixture} cut at {len}");
            }
        }
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
    }

    #[test]
    fn an_update_tuple_marker_is_refused_in_an_insert() {
        let bytes = [b'I', 0, 0, 0, 7, b'K', 0, 0];
        assert_eq!(decode(&bytes), Err(DecodeError::NotANewTuple(b'K')));
    }
}
