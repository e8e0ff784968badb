//! The enricher on real Olist records: the golden slice in
//! `tests/golden/enrich/` with the tables its `tables.txt` names, and every
//! order of the shared data set against the full tables.
//!
//! Every expected count below was computed independently of this crate, by a
//! ~40-line Python model of the documented semantics (walk the holders of the
//! key path, look the key up in a dict built with `csv.DictReader`, set the
//! columns or apply `on_missing`) run over the same files, with `tomllib`
//! reading the golden `config.toml`. The configs written here as JSON mirror
//! that file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use enrich::Enrich;
use serde_json::{Value, json};
use sluice_sdk::testing::{Harness, TestEvent, read_csv, shared_data};
use sluice_sdk::{Failure, Header, Verdict};

/// Mirrors `tests/golden/enrich/config.toml`.
fn golden_config() -> Value {
    json!({"lookups": [
        {"table": "customers", "key": "customer_id", "on_missing": "retry",
         "set": {"customer_state": "customer_state", "customer_city": "customer_city"}},
        {"table": "products", "key": "items[].product_id", "on_missing": "reject",
         "set": {"product_category_name": "product_category_name"}},
        {"table": "categories", "key": "items[].product_category_name", "on_missing": "skip",
         "set": {"product_category": "product_category_name_english"}},
    ]})
}

#[test]
fn golden_order_slice() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/enrich");
    let mut h = Harness::<Enrich>::from_json(golden_config());
    load_tables_txt(&mut h, &golden.join("tables.txt"));
    let events = TestEvent::from_input_file(golden.join("input.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let outcomes = h.handle_all(&events);
    let tally = Tally::of(&outcomes);
    assert_eq!((tally.emit, tally.drop, tally.retry, tally.reject), (26, 0, 2, 1));
    assert_eq!((h.counter("enriched"), h.counter("missing")), (86, 6));

    // English categories over all emitted items; four items have none.
    let categories = BTreeMap::from([
        ("<none>", 4),
        ("air_conditioning", 2),
        ("auto", 2),
        ("baby", 2),
        ("bed_bath_table", 2),
        ("books_general_interest", 1),
        ("computers_accessories", 7),
        ("cool_stuff", 1),
        ("fashion_bags_accessories", 1),
        ("furniture_decor", 3),
        ("garden_tools", 1),
        ("health_beauty", 4),
        ("housewares", 1),
        ("toys", 1),
    ]);
    let found: BTreeMap<&str, usize> = tally
        .values
        .iter()
        .flat_map(|v| v["items"].as_array().into_iter().flatten())
        .fold(BTreeMap::new(), |mut acc, item| {
            *acc.entry(item["product_category"].as_str().unwrap_or("<none>")).or_default() += 1;
            acc
        });
    assert_eq!(found, categories);

    // The first order (2e7a8482…, two furniture items, a customer in Boa
    // Vista): original fields kept, customer fields on the order, category
    // fields on each item.
    let first = &tally.values[0];
    assert_eq!(first["customer_state"], "RR");
    assert_eq!(first["customer_city"], "boa vista");
    assert_eq!(first["eventType"], "OrderPlaced");
    assert_eq!(first["items"][1]["product_category_name"], "moveis_decoracao");
    assert_eq!(first["items"][1]["product_category"], "furniture_decor");
    let Ok(Verdict::Emit(records)) = &outcomes[0] else { panic!("offset 0 is emitted") };
    assert_eq!(records[0].key.as_deref(), Some(&b"2e7a8482f6fb09756ca50c10d7bfc047"[..]));
    assert_eq!(records[0].headers, vec![Header::new("content-type", "application/json")]);

    // The two customers left out of the customers slice.
    let retried: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Err(Failure::Retry { message, .. }) => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(retried.len(), 2);
    for message in retried {
        assert!(message.starts_with("lookup in `customers`: `customer_id` = \""), "{message}");
        assert!(message.ends_with("\" is not in the table; the reference data may lag"), "{message}");
    }
    assert!(matches!(&outcomes[10], Err(Failure::Reject(m)) if m.contains("value is not valid JSON")));
}

#[test]
fn all_8135_olist_orders() {
    let Some(olist) = Olist::load() else { return };
    assert_eq!(olist.orders.len(), 8135);

    let mut h = Harness::<Enrich>::from_json(golden_config());
    olist.serve(&mut h);
    let tally = Tally::of(&h.handle_all(&olist.orders));
    // 8135 customers + 8365 products + 8202 categories; 163 items have no
    // English category (111 products have none at all).
    assert_eq!((tally.emit, tally.drop, tally.retry, tally.reject), (8135, 0, 0, 0));
    assert_eq!((h.counter("enriched"), h.counter("missing")), (24_702, 163));

    let mut config = golden_config();
    config["lookups"][2]["on_missing"] = json!("drop");
    let mut h = Harness::<Enrich>::from_json(config);
    olist.serve(&mut h);
    let tally = Tally::of(&h.handle_all(&olist.orders));
    assert_eq!((tally.emit, tally.drop), (7988, 147));
    assert_eq!((h.counter("enriched"), h.counter("missing")), (24_700, 147));
}

#[test]
fn olist_sellers_merged_whole_into_each_item() {
    let Some(olist) = Olist::load() else { return };
    let mut h = Harness::<Enrich>::from_json(json!({"lookups": [
        {"table": "sellers", "key": "items[].seller_id", "into": "seller", "on_missing": "reject"},
    ]}));
    olist.serve(&mut h);
    let tally = Tally::of(&h.handle_all(&olist.orders));
    assert_eq!((tally.emit, tally.reject), (8135, 0));
    assert_eq!(h.counter("enriched"), 8365);
    let items = tally.values.iter().flat_map(|v| v["items"].as_array().into_iter().flatten());
    assert!(items.clone().all(|item| item["seller"]["seller_id"] == item["seller_id"]));
    assert_eq!(items.filter(|item| item["seller"]["seller_state"] == "SP").count(), 5966);
}

#[test]
fn olist_customers_lagging_behind_orders_are_retried() {
    let Some(olist) = Olist::load() else { return };
    // Only the customers of the 1107 shipped orders are known yet.
    let shipped: Vec<Value> = olist
        .orders_csv
        .iter()
        .filter(|o| o["order_status"] == "shipped")
        .filter_map(|o| olist.customers.get(o["customer_id"].as_str()?).cloned())
        .collect();
    let mut h = Harness::<Enrich>::from_json(json!({"lookups": [golden_config()["lookups"][0].clone()]}));
    h.table("customers", "customer_id", shipped);
    let tally = Tally::of(&h.handle_all(&olist.orders));
    assert_eq!((tally.emit, tally.retry), (1107, 7028));
}

/// Verdict counts, and the values of emitted records in order.
#[derive(Debug, Default)]
struct Tally {
    emit: usize,
    drop: usize,
    retry: usize,
    reject: usize,
    values: Vec<Value>,
}

impl Tally {
    fn of(outcomes: &[Result<Verdict, Failure>]) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            match outcome {
                Ok(Verdict::Emit(records)) => {
                    tally.emit += 1;
                    for record in records {
                        let value = record.value.as_deref().unwrap_or_default();
                        tally.values.push(serde_json::from_slice(value).unwrap_or_else(|e| panic!("not JSON: {e}")));
                    }
                }
                Ok(Verdict::Drop(_)) => tally.drop += 1,
                Err(Failure::Retry { .. }) => tally.retry += 1,
                Err(Failure::Reject(_)) => tally.reject += 1,
                Ok(Verdict::Pass) => panic!("the enricher never passes records through unchanged"),
            }
        }
        tally
    }
}

/// The shared Olist data set: one order event per order with its items, and
/// the reference tables.
struct Olist {
    dir: PathBuf,
    orders: Vec<TestEvent>,
    orders_csv: Vec<Value>,
    customers: HashMap<String, Value>,
}

impl Olist {
    /// The lookup tables, as `(name, file, key column)`.
    const TABLES: [(&str, &str, &str); 4] = [
        ("customers", "olist_customers_dataset.csv", "customer_id"),
        ("products", "olist_products_dataset.csv", "product_id"),
        ("categories", "product_category_name_translation.csv", "product_category_name"),
        ("sellers", "olist_sellers_dataset.csv", "seller_id"),
    ];

    fn load() -> Option<Olist> {
        let dir = shared_data("olist-ecommerce/olist_orders_dataset.csv")?.parent()?.to_owned();
        let rows = |file: &str| -> Vec<Value> {
            let rows = read_csv(dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
            rows.into_iter().map(Value::Object).collect()
        };
        let orders_csv = rows("olist_orders_dataset.csv");
        let items = rows("olist_order_items_dataset.csv");
        let customers = rows("olist_customers_dataset.csv")
            .into_iter()
            .filter_map(|c| Some((c["customer_id"].as_str()?.to_owned(), c)))
            .collect();

        let mut by_order: HashMap<&str, Vec<Value>> = HashMap::new();
        for item in &items {
            let price: f64 = item["price"].as_str().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{item}"));
            let entry = json!({"product_id": item["product_id"], "seller_id": item["seller_id"], "price": price});
            by_order.entry(item["order_id"].as_str().unwrap_or_default()).or_default().push(entry);
        }
        let orders = orders_csv
            .iter()
            .enumerate()
            .map(|(offset, o)| {
                let order_id = o["order_id"].as_str().unwrap_or_default();
                let value = json!({
                    "eventId": format!("{order_id}-placed"),
                    "eventType": "OrderPlaced",
                    "version": 1,
                    "occurredAt": o["order_purchase_timestamp"],
                    "order_id": order_id,
                    "customer_id": o["customer_id"],
                    "items": by_order.get(order_id).cloned().unwrap_or_default(),
                });
                TestEvent::json(value).key(order_id).offset(offset as i64)
            })
            .collect();
        Some(Olist { dir, orders, orders_csv, customers })
    }

    /// Serves the reference tables from their files, as the host would.
    fn serve(&self, h: &mut Harness<Enrich>) {
        for (name, file, key) in Olist::TABLES {
            h.table_csv(name, self.dir.join(file), key).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Serves the tables a golden `tables.txt` lists (`NAME=PATH:KEY_COLUMN`,
/// paths relative to the repository root), as the host would.
fn load_tables_txt(h: &mut Harness<Enrich>, tables_txt: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(tables_txt).unwrap_or_else(|e| panic!("{}: {e}", tables_txt.display()));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed = line.split_once('=').and_then(|(name, rest)| Some((name, rest.rsplit_once(':')?)));
        let Some((name, (path, key))) = parsed else { panic!("{}: bad line {line:?}", tables_txt.display()) };
        h.table_csv(name, root.join(path), key).unwrap_or_else(|e| panic!("{e}"));
    }
}
