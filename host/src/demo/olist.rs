//! The Olist order tables as a time-ordered stream of domain events.
//!
//! Each order row becomes up to five events, keyed by `order_id`:
//!
//! | event | when | extra fields |
//! |---|---|---|
//! | `OrderPlaced` | `order_purchase_timestamp` (always) | `items` [{`product_id`, `seller_id`, `price`}], `total` |
//! | `PaymentApproved` | `order_approved_at`, when present | `payments` [{`type`, `installments`, `value`}] |
//! | `ShipmentDispatched` | `order_delivered_carrier_date`, when present | |
//! | `ShipmentDelivered` | `order_delivered_customer_date`, when present | |
//! | `OrderCanceled` | when `order_status` is `canceled` | `order_status` |
//!
//! Every value also has `eventId`, `eventType`, `version` (1), `occurredAt`,
//! `order_id` and `customer_id`. The stream is sorted by `occurredAt`; ties
//! are broken by the event types in the order of the table, then by
//! `order_id`, so the same files always give the same stream.
//!
//! The source data is not always coherent (a few orders are handed to the
//! carrier before their payment is approved, and a few canceled orders were
//! delivered first): the events say what the tables say, in time order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::produce::csv_lines::{CsvLines, field_count_mismatch};

/// The file names the tables have in a demo data folder.
pub const ORDERS_FILE: &str = "olist_orders.csv";
pub const ITEMS_FILE: &str = "olist_order_items.csv";
pub const PAYMENTS_FILE: &str = "olist_order_payments.csv";

/// Every event type, in tie-breaking order.
pub const EVENT_TYPES: [&str; 5] =
    ["OrderPlaced", "PaymentApproved", "ShipmentDispatched", "ShipmentDelivered", "OrderCanceled"];

/// One domain event, ready to be produced: `key` is the record key, `value`
/// the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoEvent {
    /// The order id.
    pub key: String,
    /// One of [`EVENT_TYPES`].
    pub event_type: &'static str,
    /// ISO 8601 in UTC, e.g. `2017-07-09T21:57:05Z` (also `value.occurredAt`).
    pub occurred_at: String,
    pub value: Value,
}

impl DemoEvent {
    /// The value as compact JSON bytes, the record's payload.
    pub fn value_bytes(&self) -> Vec<u8> {
        self.value.to_string().into_bytes()
    }
}

/// Reads [`ORDERS_FILE`], [`ITEMS_FILE`] and [`PAYMENTS_FILE`] from `dir`.
pub fn events_from_dir(dir: &Path) -> anyhow::Result<Vec<DemoEvent>> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    events_from_csv(&read(ORDERS_FILE)?, &read(ITEMS_FILE)?, &read(PAYMENTS_FILE)?)
}

/// The events of the orders in `orders`, with their `items` and `payments`
/// (the texts of the three CSV files, header rows included). Errors name the
/// file and line. An item or payment of an order that is not in `orders` is
/// an error, not something to skip: the tables are meant to match.
pub fn events_from_csv(orders: &str, items: &str, payments: &str) -> anyhow::Result<Vec<DemoEvent>> {
    let mut orders = read_orders(orders)?;
    let index: HashMap<String, usize> = orders.iter().enumerate().map(|(i, o)| (o.order_id.clone(), i)).collect();
    let order_at = |file: &str, line: u64, order_id: &str| {
        index
            .get(order_id)
            .copied()
            .with_context(|| format!("{file} line {line}: order {order_id} is not in {ORDERS_FILE}"))
    };

    for row in rows(ITEMS_FILE, items, &["order_id", "order_item_id", "product_id", "seller_id", "price"])? {
        let [order_id, item_id, product_id, seller_id, price] = row.cells()?;
        let order = &mut orders[order_at(ITEMS_FILE, row.line, order_id)?];
        let item_id: u32 = row.parse("order_item_id", item_id)?;
        let price: f64 = row.parse("price", price)?;
        order.items.push((item_id, price, json!({"product_id": product_id, "seller_id": seller_id, "price": price})));
    }

    let columns = ["order_id", "payment_sequential", "payment_type", "payment_installments", "payment_value"];
    for row in rows(PAYMENTS_FILE, payments, &columns)? {
        let [order_id, sequential, kind, installments, value] = row.cells()?;
        let order = &mut orders[order_at(PAYMENTS_FILE, row.line, order_id)?];
        let sequential: u32 = row.parse("payment_sequential", sequential)?;
        let installments: u32 = row.parse("payment_installments", installments)?;
        let value: f64 = row.parse("payment_value", value)?;
        order.payments.push((sequential, json!({"type": kind, "installments": installments, "value": value})));
    }

    let mut events: Vec<DemoEvent> = orders.into_iter().flat_map(Order::into_events).collect();
    events.sort_by(|a, b| {
        (&a.occurred_at, rank(a.event_type), &a.key).cmp(&(&b.occurred_at, rank(b.event_type), &b.key))
    });
    Ok(events)
}

/// How many events of each type `events` holds; every type is listed, with 0
/// when there are none.
pub fn expected_counts(events: &[DemoEvent]) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> = EVENT_TYPES.iter().map(|t| (*t, 0)).collect();
    for event in events {
        *counts.entry(event.event_type).or_default() += 1;
    }
    counts
}

/// The first 16 hex digits of sha256("{order_id}/{event_type}"): the same
/// event always gets the same id, so a replay can be deduplicated.
pub fn event_id(order_id: &str, event_type: &str) -> String {
    let digest = Sha256::digest(format!("{order_id}/{event_type}"));
    hex::encode(&digest[..8])
}

fn rank(event_type: &str) -> usize {
    EVENT_TYPES.iter().position(|t| *t == event_type).unwrap_or(EVENT_TYPES.len())
}

/// An order row with its items and payments, timestamps already in ISO 8601.
struct Order {
    order_id: String,
    customer_id: String,
    status: String,
    purchased: String,
    approved: Option<String>,
    dispatched: Option<String>,
    delivered: Option<String>,
    /// (order_item_id, price, item JSON)
    items: Vec<(u32, f64, Value)>,
    /// (payment_sequential, payment JSON)
    payments: Vec<(u32, Value)>,
}

impl Order {
    fn into_events(mut self) -> Vec<DemoEvent> {
        self.items.sort_by_key(|(id, _, _)| *id);
        self.payments.sort_by_key(|(sequential, _)| *sequential);
        // Prices are in reais with two decimals; the sum is rounded back to
        // cents so that 39.99 + 32.9 reads 72.89, not 72.89000000000001.
        let total = (self.items.iter().map(|(_, price, _)| price).sum::<f64>() * 100.0).round() / 100.0;
        let items: Vec<Value> = std::mem::take(&mut self.items).into_iter().map(|(_, _, item)| item).collect();
        let payments: Vec<Value> = std::mem::take(&mut self.payments).into_iter().map(|(_, payment)| payment).collect();

        let mut events = vec![self.event("OrderPlaced", &self.purchased, json!({"items": items, "total": total}))];
        if let Some(at) = &self.approved {
            events.push(self.event("PaymentApproved", at, json!({"payments": payments})));
        }
        if let Some(at) = &self.dispatched {
            events.push(self.event("ShipmentDispatched", at, json!({})));
        }
        if let Some(at) = &self.delivered {
            events.push(self.event("ShipmentDelivered", at, json!({})));
        }
        if self.status == "canceled" {
            // The tables do not say when an order was canceled. It happened
            // no earlier than the last thing they record for it, so the event
            // takes the latest of the purchase, approval, carrier and delivery
            // times (ISO strings of one format compare as times do). The
            // estimated delivery date is a promise, not an occurrence, and is
            // left out.
            let latest =
                [Some(&self.purchased), self.approved.as_ref(), self.dispatched.as_ref(), self.delivered.as_ref()]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or(&self.purchased);
            events.push(self.event("OrderCanceled", latest, json!({"order_status": self.status})));
        }
        events
    }

    fn event(&self, event_type: &'static str, at: &str, extra: Value) -> DemoEvent {
        let mut value = json!({
            "eventId": event_id(&self.order_id, event_type),
            "eventType": event_type,
            "version": 1,
            "occurredAt": at,
            "order_id": self.order_id,
            "customer_id": self.customer_id,
        });
        if let (Value::Object(body), Value::Object(extra)) = (&mut value, extra) {
            body.extend(extra);
        }
        DemoEvent { key: self.order_id.clone(), event_type, occurred_at: at.to_owned(), value }
    }
}

fn read_orders(text: &str) -> anyhow::Result<Vec<Order>> {
    let columns = [
        "order_id",
        "customer_id",
        "order_status",
        "order_purchase_timestamp",
        "order_approved_at",
        "order_delivered_carrier_date",
        "order_delivered_customer_date",
    ];
    let mut orders = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for row in rows(ORDERS_FILE, text, &columns)? {
        let [order_id, customer_id, status, purchased, approved, dispatched, delivered] = row.cells()?;
        if let Some(first) = seen.insert(order_id.to_owned(), row.line) {
            bail!("{ORDERS_FILE} line {}: order {order_id} is already on line {first}", row.line);
        }
        let optional = |column: &str, cell: &str| (!cell.is_empty()).then(|| row.timestamp(column, cell)).transpose();
        orders.push(Order {
            order_id: order_id.to_owned(),
            customer_id: customer_id.to_owned(),
            status: status.to_owned(),
            purchased: row.timestamp("order_purchase_timestamp", purchased)?,
            approved: optional("order_approved_at", approved)?,
            dispatched: optional("order_delivered_carrier_date", dispatched)?,
            delivered: optional("order_delivered_customer_date", delivered)?,
            items: Vec::new(),
            payments: Vec::new(),
        });
    }
    Ok(orders)
}

/// One CSV row, reduced to the columns asked for, in that order.
struct Row {
    file: &'static str,
    line: u64,
    cells: Vec<String>,
}

impl Row {
    fn cells<const N: usize>(&self) -> anyhow::Result<[&str; N]> {
        let cells: Vec<&str> = self.cells.iter().map(String::as_str).collect();
        cells.try_into().map_err(|_| anyhow::anyhow!("{} line {}: expected {N} columns", self.file, self.line))
    }

    fn parse<T: std::str::FromStr>(&self, column: &str, cell: &str) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let value: T = cell.parse().map_err(|e| self.error(column, cell, e))?;
        Ok(value)
    }

    /// `2017-07-09 21:57:05` → `2017-07-09T21:57:05Z`. The source times carry
    /// no zone (they are Brazilian local times); the demo treats them as UTC
    /// so that a replay is the same on every machine.
    fn timestamp(&self, column: &str, cell: &str) -> anyhow::Result<String> {
        let b = cell.as_bytes();
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
        let shaped = b.len() == 19
            && digits.iter().all(|&i| b[i].is_ascii_digit())
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && b[16] == b':';
        if !shaped {
            return Err(self.error(column, cell, "expected YYYY-MM-DD HH:MM:SS"));
        }
        Ok(format!("{}T{}Z", &cell[..10], &cell[11..]))
    }

    fn error(&self, column: &str, cell: &str, why: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{} line {}: {column} {cell:?}: {why}", self.file, self.line)
    }
}

/// The rows of `text`, a CSV file with a header row holding every one of
/// `columns`.
fn rows(file: &'static str, text: &str, columns: &[&str]) -> anyhow::Result<Vec<Row>> {
    let mut lines = CsvLines::new(text.as_bytes());
    let header = match lines.next() {
        None => bail!("{file}: no header row"),
        Some(read) => match read.with_context(|| format!("cannot read {file}"))? {
            (_, Ok(header)) => header,
            (line, Err(why)) => bail!("{file} line {line}: {why}"),
        },
    };
    let positions: Vec<usize> = columns
        .iter()
        .map(|column| {
            header
                .iter()
                .position(|h| h == *column)
                .with_context(|| format!("{file}: no column {column} in the header"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut rows = Vec::new();
    for read in lines {
        let (line, record) = read.with_context(|| format!("cannot read {file}"))?;
        let record = record.map_err(|why| anyhow::anyhow!("{file} line {line}: {why}"))?;
        if record.len() != header.len() {
            bail!("{file} line {line}: {}", field_count_mismatch(record.len(), header.len()));
        }
        // Every row has the header's length (checked above), so every
        // position is inside it.
        let cells = positions.iter().map(|&i| record.get(i).unwrap_or_default().to_owned()).collect();
        rows.push(Row { file, line, cells });
    }
    Ok(rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use super::*;

    fn slice_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo/data")
    }

    const ORDERS_HEADER: &str = "order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,\
        order_delivered_carrier_date,order_delivered_customer_date,order_estimated_delivery_date\n";
    const ITEMS_HEADER: &str = "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value\n";
    const PAYMENTS_HEADER: &str = "order_id,payment_sequential,payment_type,payment_installments,payment_value\n";

    #[test]
    fn counts_per_type_on_the_demo_slice() {
        let events = events_from_dir(&slice_dir()).unwrap();
        // Computed independently with python3 over config/demo/data/olist_orders.csv:
        //   for r in csv.DictReader(open('olist_orders.csv')):
        //       OrderPlaced += 1 (every row)
        //       PaymentApproved += bool(r['order_approved_at'])
        //       ShipmentDispatched += bool(r['order_delivered_carrier_date'])
        //       ShipmentDelivered += bool(r['order_delivered_customer_date'])
        //       OrderCanceled += r['order_status'] == 'canceled'
        let expected = BTreeMap::from([
            ("OrderPlaced", 2005),
            ("PaymentApproved", 1966),
            ("ShipmentDispatched", 1355),
            ("ShipmentDelivered", 1043),
            ("OrderCanceled", 184),
        ]);
        assert_eq!(expected_counts(&events), expected);
        assert_eq!(events.len(), 6553);
    }

    #[test]
    fn the_stream_is_in_time_order_with_stable_ties() {
        let events = events_from_dir(&slice_dir()).unwrap();
        for pair in events.windows(2) {
            let a = (&pair[0].occurred_at, rank(pair[0].event_type), &pair[0].key);
            let b = (&pair[1].occurred_at, rank(pair[1].event_type), &pair[1].key);
            assert!(a <= b, "{a:?} comes before {b:?}");
        }
        let first = &events[0];
        assert_eq!(first.event_type, "OrderPlaced");
        assert_eq!(first.occurred_at, "2016-09-04T21:15:19Z");
        for event in &events {
            assert_eq!(event.value["occurredAt"], event.occurred_at.as_str());
            assert_eq!(event.value["eventType"], event.event_type);
            assert_eq!(event.value["order_id"], event.key.as_str());
        }
    }

    #[test]
    fn event_ids_are_unique_and_deterministic() {
        let events = events_from_dir(&slice_dir()).unwrap();
        let ids: HashSet<&str> = events.iter().map(|e| e.value["eventId"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), events.len());
        assert_eq!(events, events_from_dir(&slice_dir()).unwrap());
    }

    #[test]
    fn one_order_in_full() {
        let orders = format!(
            "{ORDERS_HEADER}o1,c1,canceled,2017-07-09 21:57:05,2017-07-09 22:10:13,2017-07-11 14:58:04,,2017-08-01 00:00:00\n\
             o2,c2,created,2017-07-09 21:57:05,,,,2017-08-01 00:00:00\n"
        );
        let items = format!(
            "{ITEMS_HEADER}o1,2,p2,s1,2017-07-13 22:10:13,32.9,5.00\no1,1,p1,s1,2017-07-13 22:10:13,39.99,5.00\n"
        );
        let payments = format!("{PAYMENTS_HEADER}o1,2,voucher,1,10.0\no1,1,credit_card,3,62.89\n");
        let events = events_from_csv(&orders, &items, &payments).unwrap();
        let summary: Vec<(&str, &str, &str)> =
            events.iter().map(|e| (e.occurred_at.as_str(), e.event_type, e.key.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("2017-07-09T21:57:05Z", "OrderPlaced", "o1"),
                ("2017-07-09T21:57:05Z", "OrderPlaced", "o2"),
                ("2017-07-09T22:10:13Z", "PaymentApproved", "o1"),
                ("2017-07-11T14:58:04Z", "ShipmentDispatched", "o1"),
                ("2017-07-11T14:58:04Z", "OrderCanceled", "o1"),
            ]
        );
        assert_eq!(
            events[0].value,
            json!({
                "eventId": event_id("o1", "OrderPlaced"), "eventType": "OrderPlaced", "version": 1,
                "occurredAt": "2017-07-09T21:57:05Z", "order_id": "o1", "customer_id": "c1",
                "items": [{"product_id": "p1", "seller_id": "s1", "price": 39.99},
                          {"product_id": "p2", "seller_id": "s1", "price": 32.9}],
                "total": 72.89,
            })
        );
        assert_eq!(events[1].value["items"], json!([]));
        assert_eq!(events[1].value["total"], json!(0.0));
        assert_eq!(
            events[2].value["payments"],
            json!([{"type": "credit_card", "installments": 3, "value": 62.89},
                   {"type": "voucher", "installments": 1, "value": 10.0}])
        );
        assert_eq!(event_id("o1", "OrderPlaced"), hex::encode(&Sha256::digest("o1/OrderPlaced")[..8]));
        assert_eq!(event_id("o1", "OrderPlaced").len(), 16);
    }

    #[test]
    fn a_malformed_row_names_the_file_and_line() {
        let good = format!("{ORDERS_HEADER}o1,c1,delivered,2017-07-09 21:57:05,,,,2017-08-01 00:00:00\n");
        let short = format!("{good}o2,c2,delivered,2017-07-09 21:57:05\n");
        let err = events_from_csv(&short, ITEMS_HEADER, PAYMENTS_HEADER).unwrap_err().to_string();
        assert_eq!(err, "olist_orders.csv line 3: 4 fields where the header has 8");

        let bad_time = format!("{good}o2,c2,delivered,09/07/2017 21:57,,,,2017-08-01 00:00:00\n");
        let err = events_from_csv(&bad_time, ITEMS_HEADER, PAYMENTS_HEADER).unwrap_err().to_string();
        assert!(err.starts_with("olist_orders.csv line 3: order_purchase_timestamp"), "{err}");

        let bad_price = format!("{ITEMS_HEADER}o1,1,p1,s1,2017-07-13 22:10:13,12,50,5.00\n");
        let err = events_from_csv(&good, &bad_price, PAYMENTS_HEADER).unwrap_err().to_string();
        assert_eq!(err, "olist_order_items.csv line 2: 8 fields where the header has 7");

        let nan_price = format!("{ITEMS_HEADER}o1,1,p1,s1,2017-07-13 22:10:13,twelve,5.00\n");
        let err = events_from_csv(&good, &nan_price, PAYMENTS_HEADER).unwrap_err().to_string();
        assert!(err.starts_with("olist_order_items.csv line 2: price \"twelve\""), "{err}");

        let orphan = format!("{PAYMENTS_HEADER}o1,1,boleto,1,10.0\no9,1,boleto,1,10.0\n");
        let err = events_from_csv(&good, ITEMS_HEADER, &orphan).unwrap_err().to_string();
        assert_eq!(err, "olist_order_payments.csv line 3: order o9 is not in olist_orders.csv");

        let twice = format!("{good}o1,c1,delivered,2017-07-09 21:57:05,,,,2017-08-01 00:00:00\n");
        let err = events_from_csv(&twice, ITEMS_HEADER, PAYMENTS_HEADER).unwrap_err().to_string();
        assert_eq!(err, "olist_orders.csv line 3: order o1 is already on line 2");

        let err = events_from_csv("order_id,customer_id\n", ITEMS_HEADER, PAYMENTS_HEADER).unwrap_err().to_string();
        assert_eq!(err, "olist_orders.csv: no column order_status in the header");
    }

    #[test]
    fn events_from_dir_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", events_from_dir(dir.path()).unwrap_err());
        assert!(err.contains("olist_orders.csv"), "{err}");
    }
}
