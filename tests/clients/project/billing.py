import db

TAX_RATE = 0.2


def invoice_for(order):
    subtotal = sum(i["price"] * i["qty"] for i in order["items"])
    invoice = {"order_id": order["id"], "subtotal": subtotal, "tax": subtotal * TAX_RATE}
    invoice["total"] = invoice["subtotal"] + invoice["tax"]
    db.insert_invoice(invoice)
    return invoice
