from flask import Flask, jsonify, request

import billing
import db

app = Flask(__name__)


@app.post("/orders")
def create_order():
    order = db.insert_order(request.json)
    invoice = billing.invoice_for(order)
    return jsonify({"order": order, "invoice": invoice}), 201


@app.get("/orders/<int:order_id>")
def get_order(order_id):
    return jsonify(db.get_order(order_id))
