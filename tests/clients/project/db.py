import sqlite3

CONN = sqlite3.connect("orders.db", check_same_thread=False)
CONN.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, body TEXT)")
CONN.execute("CREATE TABLE IF NOT EXISTS invoices (order_id INTEGER, total REAL)")


def insert_order(body):
    cur = CONN.execute("INSERT INTO orders (body) VALUES (?)", (repr(body),))
    return dict(body, id=cur.lastrowid)


def get_order(order_id):
    row = CONN.execute("SELECT body FROM orders WHERE id = ?", (order_id,)).fetchone()
    return {"id": order_id, "body": row[0] if row else None}


def insert_invoice(invoice):
    CONN.execute("INSERT INTO invoices VALUES (?, ?)", (invoice["order_id"], invoice["total"]))
