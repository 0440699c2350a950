"""The quickstart's built-in task: turn an order sentence into a JSON record.

Answers are exactly checkable, and a small instruct model gets them mostly wrong out of the box
(dates must be normalised, quantities become numbers, item names singular), so a short LoRA run
shows a clear gain. Generated deterministically from a seed; no download.
"""

from __future__ import annotations

import json
import random

FIRST = ["Maria", "Ahmed", "Chen", "Olga", "Tomas", "Aisha", "Kenji", "Lucia", "Pierre", "Nadia", "Diego",
         "Ingrid", "Kwame", "Sofia", "Ravi", "Elena", "Jonas", "Amara", "Mateo", "Yuki", "Farah", "Liam"]
LAST = ["Lopez", "Haddad", "Wei", "Petrova", "Novak", "Bello", "Sato", "Romano", "Dubois", "Karimi",
        "Silva", "Berg", "Mensah", "Rossi", "Patel", "Ionescu", "Weber", "Okafor", "Costa", "Tanaka"]
CITIES = ["Lisbon", "Nairobi", "Osaka", "Krakow", "Lima", "Oslo", "Porto", "Accra", "Dublin", "Quito",
          "Seville", "Tallinn", "Hanoi", "Zagreb", "Austin", "Perth", "Bergen", "Cusco", "Leeds", "Turin"]
ITEMS = [("lamp", "lamps"), ("chair", "chairs"), ("kettle", "kettles"), ("notebook", "notebooks"),
         ("bicycle", "bicycles"), ("backpack", "backpacks"), ("teapot", "teapots"), ("keyboard", "keyboards"),
         ("mirror", "mirrors"), ("blanket", "blankets"), ("candle", "candles"), ("helmet", "helmets")]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}

TEMPLATES = [
    "{name} from {city} ordered {qty} {items} on {date}.",
    "On {date}, {name} ({city}) bought {qty} {items}.",
    "{qty} {items} were ordered by {name} of {city} on {date}.",
    "Order note: {date} - {name}, shipping to {city}, wants {qty} {items}.",
    "{name} placed an order for {qty} {items} on {date}; deliver to {city}.",
    "Shipped to {city} on {date}: {qty} {items} for {name}.",
]

INSTRUCTION = (
    "Extract the order from the sentence as JSON with keys customer, city, item, quantity, date. "
    "Use the singular item name, a number for quantity and YYYY-MM-DD for the date.\n\nSentence: "
)


def _date(rng: random.Random) -> tuple[str, str]:
    y, m, d = rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28)
    iso = f"{y:04d}-{m:02d}-{d:02d}"
    shown = rng.choice([f"{MONTHS[m - 1]} {d}, {y}", f"{d} {MONTHS[m - 1]} {y}", iso, f"{d}/{m}/{y}"])
    return shown, iso


def make_row(rng: random.Random) -> dict:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    city = rng.choice(CITIES)
    item, items = rng.choice(ITEMS)
    qty = rng.randint(2, 9)
    shown_date, iso = _date(rng)
    shown_qty = NUMBER_WORDS[qty] if rng.random() < 0.5 else str(qty)
    sentence = rng.choice(TEMPLATES).format(name=name, city=city, qty=shown_qty, items=items, date=shown_date)
    answer = {"customer": name, "city": city, "item": item, "quantity": qty, "date": iso}
    return {"instruction": INSTRUCTION + sentence, "input": "", "output": json.dumps(answer)}


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [make_row(rng) for _ in range(n)]
