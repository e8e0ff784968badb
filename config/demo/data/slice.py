#!/usr/bin/env python3
"""Cuts the demo's Olist slice out of the shared Olist subset.

Usage: python3 slice.py SOURCE_DIR [OUT_DIR]   (OUT_DIR defaults to this folder)

Selection, deterministic:
  1. orders: sort every order row by (order_purchase_timestamp, order_id) and keep
     the first 2,000; then add every order whose order_status does not occur among
     those 2,000 (only `created` in this data: 5 orders), so that every status
     appears in the slice.
  2. order items and payments: every row whose order_id is a kept order.
  3. customers: every row whose customer_id belongs to a kept order.
  4. products: every row whose product_id occurs in a kept order item.
  5. product_category_name_translation.csv: the whole file.
Kept rows are written byte for byte, in their original file order, after the
original header line. Every source file has one record per physical line (no
quoted line breaks), which the script checks.
"""

import csv
import io
import sys
from pathlib import Path

FIRST = 2000


def read(path):
    """(header line, [(raw line, parsed row)]) with raw lines kept byte for byte."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    assert lines[-1] == b"", f"{path}: no final newline"
    lines = lines[:-1]
    header = next(csv.reader([lines[0].decode()]))
    rows = []
    for n, raw in enumerate(lines[1:], start=2):
        parsed = list(csv.reader(io.StringIO(raw.decode(), newline="")))
        assert len(parsed) == 1 and len(parsed[0]) == len(header), f"{path}:{n}: not one record per line"
        rows.append((raw, dict(zip(header, parsed[0]))))
    return lines[0], rows


def write(path, header, rows):
    path.write_bytes(b"".join(line + b"\n" for line in [header, *(raw for raw, _ in rows)]))
    print(f"{path.name}: {len(rows)} rows, {path.stat().st_size} bytes")


def main():
    src = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent

    header, orders = read(src / "olist_orders_dataset.csv")
    by_time = sorted(orders, key=lambda r: (r[1]["order_purchase_timestamp"], r[1]["order_id"]))
    kept = {row["order_id"] for _, row in by_time[:FIRST]}
    seen = {row["order_status"] for _, row in by_time[:FIRST]}
    kept |= {row["order_id"] for _, row in orders if row["order_status"] not in seen}
    kept_orders = [r for r in orders if r[1]["order_id"] in kept]
    write(out / "olist_orders.csv", header, kept_orders)

    header, items = read(src / "olist_order_items_dataset.csv")
    kept_items = [r for r in items if r[1]["order_id"] in kept]
    write(out / "olist_order_items.csv", header, kept_items)

    header, payments = read(src / "olist_order_payments_dataset.csv")
    write(out / "olist_order_payments.csv", header, [r for r in payments if r[1]["order_id"] in kept])

    customers_wanted = {row["customer_id"] for _, row in kept_orders}
    header, customers = read(src / "olist_customers_dataset.csv")
    write(out / "olist_customers.csv", header, [r for r in customers if r[1]["customer_id"] in customers_wanted])

    products_wanted = {row["product_id"] for _, row in kept_items}
    header, products = read(src / "olist_products_dataset.csv")
    write(out / "olist_products.csv", header, [r for r in products if r[1]["product_id"] in products_wanted])

    header, translation = read(src / "product_category_name_translation.csv")
    write(out / "product_category_name_translation.csv", header, translation)


if __name__ == "__main__":
    main()
