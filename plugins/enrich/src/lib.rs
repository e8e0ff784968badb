//! Enrichment through the host's reference tables.
//!
//! Each lookup reads a key from the record, finds its row with
//! `host::lookup`, and copies columns of the row into the object that holds
//! the key: the record itself for `customer_id`, each element for
//! `items[].product_id`. Lookups run in order, so a later one can key on a
//! field an earlier one set. The record is re-emitted with the same key and
//! headers and the enriched value.
//!
//! The config table (in a route's plugin entry, or at the top level of a
//! `sluice test --config` file):
//!
//! ```toml
//! [[lookups]]
//! table = "customers"            # a reference table the route declares
//! key = "customer_id"            # text, or a number (looked up as JSON writes it)
//! # new field = row column, set next to the key
//! set = { customer_state = "customer_state", customer_city = "customer_city" }
//! on_missing = "skip"            # "skip" (default) | "drop" | "reject" | "retry"
//!
//! [[lookups]]
//! table = "products"
//! key = "items[].product_id"     # `[]`: every element of the array
//! set = { product_category_name = "product_category_name" }
//!
//! [[lookups]]
//! table = "categories"
//! key = "items[].product_category_name"   # set by the lookup above
//! set = { product_category = "product_category_name_english" }
//!
//! [[lookups]]
//! table = "sellers"
//! key = "items[].seller_id"
//! into = "seller"                # instead of `set`: the whole row as an object
//! on_missing = "retry"
//! ```
//!
//! `on_missing` says what happens when the key field is absent (or null), or
//! the table has no row for the key, or the row lacks a `set` column:
//! `skip` leaves that object as it is, `drop` drops the record with the
//! reason, `reject` sends it to the dead-letter queue, and `retry` asks the
//! host to try again later, for reference data that may lag behind the
//! events. A value that is not a JSON object is always rejected.
//!
//! Counters: `enriched` (one per row applied) and `missing` (one per key
//! absent or not found).

mod config;
mod lookup;
mod path;

use serde_json::Value;
use sluice_sdk::prelude::*;

use crate::lookup::Lookup;

/// The handler: the checked lookups, applied in order to each record.
#[derive(Debug)]
pub struct Enrich {
    lookups: Vec<Lookup>,
}

impl Handler for Enrich {
    fn init(config: &Config) -> Result<Self, String> {
        Ok(Enrich { lookups: config::lookups(config)? })
    }

    fn handle(&mut self, event: &Event<'_>) -> Result<Verdict, Failure> {
        let mut doc: Value = event.json()?;
        if !doc.is_object() {
            return Err(Failure::reject(format!("{}: value is not a JSON object", event.coordinates())));
        }
        for lookup in &self.lookups {
            if let Err(halt) = lookup.apply(&mut doc) {
                return halt.into_outcome();
            }
        }
        Ok(Verdict::emit(event.to_output().json(&doc)?))
    }
}

sluice_sdk::export!(Enrich);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_sdk::testing::{Harness, TestEvent};

    fn olist_config(on_missing: &str) -> Value {
        json!({"lookups": [
            {"table": "customers", "key": "customer_id", "on_missing": on_missing,
             "set": {"customer_state": "customer_state", "customer_city": "customer_city"}},
            {"table": "products", "key": "items[].product_id",
             "set": {"product_category_name": "product_category_name"}},
            {"table": "categories", "key": "items[].product_category_name",
             "set": {"product_category": "product_category_name_english"}},
        ]})
    }

    /// A few real rows of the Olist tables.
    fn harness(config: Value) -> Harness<Enrich> {
        let mut h = Harness::<Enrich>::from_json(config);
        h.table("customers", "customer_id", [json!({
            "customer_id": "503740e9ca751ccdda7ba28e9ab8f608", "customer_unique_id": "80bb27c7c16e8f973207a5086ab329e2",
            "customer_zip_code_prefix": "86320", "customer_city": "congonhinhas", "customer_state": "PR",
        })]);
        h.table(
            "products",
            "product_id",
            [
                json!({"product_id": "8cab8abac59158715e0d70a36c807415", "product_category_name": "esporte_lazer"}),
                json!({"product_id": "0105b5323d24fc655f73052694dbbb3a", "product_category_name": "pc_gamer"}),
            ],
        );
        h.table(
            "categories",
            "product_category_name",
            [
                json!({"product_category_name": "esporte_lazer", "product_category_name_english": "sports_leisure"}),
                json!({"product_category_name": "perfumaria", "product_category_name_english": "perfumery"}),
            ],
        );
        h
    }

    fn order(customer_id: &str, products: &[&str]) -> TestEvent {
        let items: Vec<Value> = products.iter().map(|p| json!({"product_id": p, "price": 99.9})).collect();
        TestEvent::json(json!({
            "eventId": "e1", "eventType": "OrderPlaced", "order_id": "o1",
            "customer_id": customer_id, "items": items,
        }))
        .key("o1")
        .header("traceparent", "00-abc-01")
    }

    fn emitted(outcome: Result<Verdict, Failure>) -> (Output, Value) {
        match outcome {
            Ok(Verdict::Emit(mut records)) if records.len() == 1 => {
                let record = records.remove(0);
                let value = serde_json::from_slice(record.value.as_deref().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("emitted value is not JSON: {e}"));
                (record, value)
            }
            other => panic!("expected one emitted record, got {other:?}"),
        }
    }

    #[test]
    fn fields_are_set_next_to_each_key_and_chained_lookups_see_them() {
        let mut h = harness(olist_config("skip"));
        let event = order("503740e9ca751ccdda7ba28e9ab8f608", &["8cab8abac59158715e0d70a36c807415"]);
        let (_, value) = emitted(h.handle(&event));
        assert_eq!(value["customer_state"], "PR");
        assert_eq!(value["customer_city"], "congonhinhas");
        assert_eq!(value["items"][0]["product_category_name"], "esporte_lazer");
        assert_eq!(value["items"][0]["product_category"], "sports_leisure");
        assert_eq!(value["items"][0]["price"], 99.9);
        assert_eq!(value["eventType"], "OrderPlaced");
        assert_eq!(h.counter("enriched"), 3);
        assert_eq!(h.counter("missing"), 0);
    }

    #[test]
    fn key_headers_and_topic_are_kept() {
        let mut h = harness(olist_config("skip"));
        let event = order("503740e9ca751ccdda7ba28e9ab8f608", &[]);
        let (record, _) = emitted(h.handle(&event));
        assert_eq!(record.key.as_deref(), Some(&b"o1"[..]));
        assert_eq!(record.headers, vec![Header::new("traceparent", "00-abc-01")]);
        assert_eq!(record.topic, None);
    }

    #[test]
    fn skip_leaves_unmatched_objects_alone_and_counts_them() {
        let mut h = harness(olist_config("skip"));
        let products = ["0105b5323d24fc655f73052694dbbb3a", "unknown-product", "8cab8abac59158715e0d70a36c807415"];
        let (_, value) = emitted(h.handle(&order("unknown-customer", &products)));
        assert!(value.get("customer_state").is_none());
        // pc_gamer has no English name in the categories table.
        assert_eq!(value["items"][0]["product_category_name"], "pc_gamer");
        assert!(value["items"][0].get("product_category").is_none());
        assert_eq!(value["items"][1], json!({"product_id": "unknown-product", "price": 99.9}));
        assert_eq!(value["items"][2]["product_category"], "sports_leisure");
        // customer, product 2 (and so its category key) and pc_gamer.
        assert_eq!((h.counter("enriched"), h.counter("missing")), (3, 4));
    }

    #[test]
    fn drop_reject_and_retry_name_the_table_and_key() {
        let event = order("unknown-customer", &[]);
        let reason = "lookup in `customers`: `customer_id` = \"unknown-customer\" is not in the table";
        assert_eq!(harness(olist_config("drop")).handle(&event), Ok(Verdict::drop(reason)));
        assert_eq!(harness(olist_config("reject")).handle(&event), Err(Failure::reject(reason)));
        let retry = harness(olist_config("retry")).handle(&event);
        assert_eq!(retry, Err(Failure::retry(format!("{reason}; the reference data may lag"))));
    }

    #[test]
    fn a_missing_key_field_is_missing_too() {
        let config = json!({"lookups": [
            {"table": "products", "key": "items[].product_id", "set": {"c": "product_category_name"}, "on_missing": "drop"},
        ]});
        let mut h = harness(config);
        let no_items = TestEvent::json(json!({"order_id": "o1"}));
        let reason = "lookup in `products`: key field `items[].product_id` is missing";
        assert_eq!(h.handle(&no_items), Ok(Verdict::drop(reason)));
        let second_lacks_id =
            TestEvent::json(json!({"items": [{"product_id": "8cab8abac59158715e0d70a36c807415"}, {"price": 1}]}));
        let reason = "lookup in `products`: key field `items[1].product_id` is missing";
        assert_eq!(h.handle(&second_lacks_id), Ok(Verdict::drop(reason)));
        let bad_type = TestEvent::json(json!({"items": [{"product_id": ["x"]}]}));
        let reason = "lookup in `products`: key field `items[0].product_id` is an array, not text or a number";
        assert_eq!(h.handle(&bad_type), Ok(Verdict::drop(reason)));
        // No items at all is nothing to enrich, not a miss.
        assert!(matches!(h.handle(&TestEvent::json(json!({"items": []}))), Ok(Verdict::Emit(_))));
    }

    #[test]
    fn numeric_keys_are_looked_up_as_text() {
        let mut h = Harness::<Enrich>::from_json(json!({"lookups": [
            {"table": "zips", "key": "zip", "set": {"city": "geolocation_city"}},
        ]}));
        h.table("zips", "zip", [json!({"zip": "35182", "geolocation_city": "timoteo"})]);
        // As JSON writes it: 35182.0 would be looked up as "35182.0".
        let (_, value) = emitted(h.handle(&TestEvent::json(json!({"zip": 35182}))));
        assert_eq!(value["city"], "timoteo");
    }

    #[test]
    fn into_puts_the_whole_row_under_one_field() {
        let config = json!({"lookups": [{"table": "customers", "key": "customer_id", "into": "customer"}]});
        let mut h = harness(config);
        let (_, value) = emitted(h.handle(&order("503740e9ca751ccdda7ba28e9ab8f608", &[])));
        assert_eq!(value["customer"]["customer_zip_code_prefix"], "86320");
        assert_eq!(value["customer"]["customer_state"], "PR");
    }

    #[test]
    fn a_column_the_row_lacks_is_a_miss_and_sets_nothing() {
        let config = json!({"lookups": [{"table": "customers", "key": "customer_id",
            "set": {"state": "customer_state", "region": "customer_region"}, "on_missing": "reject"}]});
        let outcome = harness(config).handle(&order("503740e9ca751ccdda7ba28e9ab8f608", &[]));
        let reason =
            "lookup in `customers`: the row for \"503740e9ca751ccdda7ba28e9ab8f608\" has no column `customer_region`";
        assert_eq!(outcome, Err(Failure::reject(reason)));
    }

    #[test]
    fn an_undeclared_table_is_rejected_whatever_on_missing_says() {
        let config = json!({"lookups": [{"table": "sellers", "key": "seller_id", "into": "seller"}]});
        let outcome = harness(config).handle(&TestEvent::json(json!({"seller_id": "s1"})));
        assert!(matches!(outcome, Err(Failure::Reject(m)) if m.contains("lookup table `sellers` is not declared")));
    }

    #[test]
    fn values_that_are_not_json_objects_are_rejected() {
        let mut h = harness(olist_config("skip"));
        let outcomes =
            h.handle_all(&[TestEvent::bytes("{oops"), TestEvent::json(json!("text")), TestEvent::tombstone()]);
        for outcome in outcomes {
            assert!(matches!(outcome, Err(Failure::Reject(_))), "{outcome:?}");
        }
    }

    #[test]
    fn bad_config_is_refused_with_the_key_named() {
        let config = json!({"lookups": [{"table": "customers", "key": "customer_id", "set": {"s": "customer_state"},
            "on_missing": "ignore"}]});
        let err = Harness::<Enrich>::new(Config::from_json(config)).expect_err("unknown on_missing");
        assert!(err.starts_with("config key `lookups[0].on_missing`: unknown variant `ignore`"), "{err}");
    }
}
