//! Which changes of the WAL become events, and how: an inserted row of the
//! captured table, or a transactional logical decoding message.

use super::super::pgoutput::{DecodeError, Insert, Relations};
use super::super::Capture;
use super::ConnectorConfig;
use crate::event::StockChanged;
use crate::history::OrderId;

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub key: String,
    pub payload: Vec<u8>,
    /// The order it announces, if the payload says (for the ledger).
    pub order: Option<OrderId>,
}

/// Why a change in the stream could not be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("undecodable pgoutput message")]
    Decode(#[from] DecodeError),
    #[error("an insert refers to relation {0}, which no Relation message described")]
    UnknownRelation(u32),
    #[error("column {column} of {table} is missing or unreadable")]
    Column { table: String, column: &'static str },
    #[error("the captured payload is not a StockChanged event")]
    Payload(#[source] serde_json::Error),
    #[error("a change arrived outside a transaction")]
    OutsideTransaction,
}

/// The event for an inserted row of the captured table; `None` for a row of
/// any other table.
pub(super) fn capture_insert(
    config: &ConnectorConfig,
    relations: &Relations,
    insert: &Insert,
) -> Result<Option<Outgoing>, CaptureError> {
    let relation = relations.get(insert.relation).ok_or(CaptureError::UnknownRelation(insert.relation))?;
    let Some(table) = config.capture.table().filter(|t| relation.is(&config.schema, t)) else { return Ok(None) };
    let column = |name: &'static str| {
        relation.text(insert, name).ok_or_else(|| CaptureError::Column { table: table.to_string(), column: name })
    };
    fn parse<T: std::str::FromStr>(text: &str, table: &str, column: &'static str) -> Result<T, CaptureError> {
        text.parse().map_err(|_| CaptureError::Column { table: table.to_string(), column })
    }
    match config.capture {
        // cdc: the row *is* the event.
        Capture::Orders => {
            let event = StockChanged {
                order_id: parse(column("order_id")?, table, "order_id")?,
                product_id: parse(column("product_id")?, table, "product_id")?,
                delta: parse(column("delta")?, table, "delta")?,
                quantity: parse(column("quantity")?, table, "quantity")?,
                version: parse(column("version")?, table, "version")?,
            };
            Ok(Some(Outgoing {
                key: event.key(config.event_key),
                payload: event.to_json(),
                order: Some(event.order_id),
            }))
        }
        // outbox-cdc, table mode: the row carries the event, ready-made.
        Capture::OutboxTable => {
            let payload = column("payload")?.as_bytes().to_vec();
            let order = StockChanged::from_json(&payload).ok().map(|e| e.order_id);
            Ok(Some(Outgoing { key: column("aggregateid")?.to_string(), payload, order }))
        }
        Capture::Messages => Ok(None),
    }
}

/// The event carried by a captured logical decoding message.
pub(super) fn capture_message(config: &ConnectorConfig, content: &[u8]) -> Result<Outgoing, CaptureError> {
    let event = StockChanged::from_json(content).map_err(CaptureError::Payload)?;
    Ok(Outgoing { key: event.key(config.event_key), payload: content.to_vec(), order: Some(event.order_id) })
}

#[cfg(test)]
mod tests {
    use super::super::super::pgoutput;
    use super::*;

    fn config(capture: Capture) -> ConnectorConfig {
        ConnectorConfig::for_tests(capture)
    }

    fn relation(id: u32, namespace: &str, name: &str, columns: &[&str]) -> pgoutput::Relation {
        pgoutput::Relation {
            id,
            namespace: namespace.into(),
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn text(values: &[&str]) -> Vec<pgoutput::Value> {
        values.iter().map(|v| pgoutput::Value::Text(v.as_bytes().to_vec())).collect()
    }

    const ORDER: &str = "6f1c2a4e-0000-4000-8000-00000000002a";

    #[test]
    fn an_orders_row_becomes_a_stock_changed_keyed_by_product() {
        let mut relations = Relations::default();
        relations.remember(relation(
            7,
            "dw_cdc_test",
            "orders",
            &["order_id", "product_id", "delta", "quantity", "version"],
        ));
        let insert = Insert { relation: 7, values: text(&[ORDER, "3", "-2", "998", "4"]) };
        let out = capture_insert(&config(Capture::Orders), &relations, &insert).unwrap().unwrap();
        assert_eq!(out.key, "3");
        let event = StockChanged::from_json(&out.payload).unwrap();
        assert_eq!((event.product_id, event.delta, event.quantity, event.version), (3, -2, 998, 4));
        assert_eq!(out.order, Some(ORDER.parse().unwrap()));
    }

    #[test]
    fn rows_of_other_tables_and_schemas_are_not_captured() {
        let mut relations = Relations::default();
        relations.remember(relation(7, "dw_other_run", "orders", &["order_id"]));
        relations.remember(relation(8, "dw_cdc_test", "stock", &["product_id"]));
        for id in [7, 8] {
            let insert = Insert { relation: id, values: text(&["x"]) };
            assert_eq!(capture_insert(&config(Capture::Orders), &relations, &insert).unwrap(), None);
        }
    }

    #[test]
    fn an_outbox_row_is_published_as_is_keyed_by_aggregate() {
        let mut relations = Relations::default();
        relations.remember(relation(
            9,
            "dw_cdc_test",
            "outbox",
            &["id", "aggregatetype", "aggregateid", "type", "payload"],
        ));
        let payload =
            format!(r#"{{"delta": -1, "version": 2, "order_id": "{ORDER}", "quantity": 5, "product_id": 4}}"#);
        let insert = Insert { relation: 9, values: text(&["id", "stock", "4", "StockChanged", &payload]) };
        let out = capture_insert(&config(Capture::OutboxTable), &relations, &insert).unwrap().unwrap();
        assert_eq!(out.key, "4");
        assert_eq!(out.payload, payload.as_bytes());
        assert_eq!(out.order, Some(ORDER.parse().unwrap()));
    }

    #[test]
    fn an_unreadable_row_is_an_error_not_a_skip() {
        let mut relations = Relations::default();
        relations.remember(relation(7, "dw_cdc_test", "orders", &["order_id", "product_id"]));
        let insert = Insert { relation: 7, values: text(&["not-a-uuid", "3"]) };
        assert!(matches!(
            capture_insert(&config(Capture::Orders), &relations, &insert),
            Err(CaptureError::Column { column: "order_id", .. })
        ));
        let unknown = Insert { relation: 99, values: vec![] };
        assert!(matches!(
            capture_insert(&config(Capture::Orders), &relations, &unknown),
            Err(CaptureError::UnknownRelation(99))
        ));
    }

    #[test]
    fn a_message_is_keyed_by_its_product() {
        let content = format!(r#"{{"order_id":"{ORDER}","product_id":2,"delta":-1,"quantity":9,"version":1}}"#);
        let by_product = config(Capture::Messages);
        let out = capture_message(&by_product, content.as_bytes()).unwrap();
        assert_eq!(out.key, "2");
        assert!(capture_message(&by_product, b"not json").is_err());
    }

    #[test]
    fn the_wrong_key_keys_a_message_by_its_order() {
        let content = format!(r#"{{"order_id":"{ORDER}","product_id":2,"delta":-1,"quantity":9,"version":1}}"#);
        let mut mis_keyed = config(Capture::Messages);
        mis_keyed.event_key = crate::event::EventKey::Order;
        assert_eq!(capture_message(&mis_keyed, content.as_bytes()).unwrap().key, ORDER);
    }
}
