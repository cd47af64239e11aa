"""Write prompts.jsonl: 200 short texts to extract structured data from, with the expected values.

    .venv/bin/python data/extraction/build.py

Deterministic (seeded): four tasks of 50 texts each, written from templates with varied wording,
names, places, numbers and dates, so the set is reproducible and carries no third-party text.
The schemas are in schemas.json; see README.md.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FIRST = [
    "Ada",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Fatima",
    "Goran",
    "Hana",
    "Ivan",
    "Jonas",
    "Kemal",
    "Lena",
    "Mateo",
    "Nina",
    "Oskar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
]
LAST = [
    "Lovelace",
    "Costa",
    "Wei",
    "Haddad",
    "Okafor",
    "Rahman",
    "Petrov",
    "Sato",
    "Novak",
    "Berg",
    "Yilmaz",
    "Fischer",
    "Rossi",
    "Kowalski",
    "Lind",
    "Patel",
    "Moreau",
    "Silva",
    "Dahl",
    "Aziz",
]
CITIES = [
    "Oslo",
    "Lisbon",
    "Nairobi",
    "Kyoto",
    "Toronto",
    "Lima",
    "Berlin",
    "Cairo",
    "Hanoi",
    "Dublin",
    "Madrid",
    "Seoul",
    "Quito",
    "Accra",
    "Perth",
    "Riga",
]
PRODUCTS = [
    "desk lamp",
    "kettle",
    "backpack",
    "keyboard",
    "water bottle",
    "notebook",
    "umbrella",
    "headphones",
    "coffee grinder",
    "yoga mat",
    "phone case",
    "toaster",
]
EVENTS = [
    "team meeting",
    "dentist appointment",
    "book club",
    "product demo",
    "birthday dinner",
    "quarterly review",
    "piano lesson",
    "job interview",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def contact(r: random.Random) -> tuple[str, dict[str, Any]]:
    first, last, city, age = r.choice(FIRST), r.choice(LAST), r.choice(CITIES), r.randint(18, 90)
    email = f"{first.lower()}.{last.lower()}@example.com"
    text = r.choice(
        [
            f"{first} {last} is {age} years old, lives in {city} and can be reached at {email}.",
            f"Contact: {first} {last}, age {age}, based in {city}. Email {email}.",
            f"Please add {first} {last} ({age}) from {city} to the list; their address is {email}.",
            f"New member {first} {last} joined from {city}. Age: {age}. Mail: {email}",
        ]
    )
    return text, {"name": f"{first} {last}", "age": age, "city": city, "email": email}


def order(r: random.Random) -> tuple[str, dict[str, Any]]:
    n = r.randint(1, 3)
    products = r.sample(PRODUCTS, n)
    items = [{"product": p, "quantity": r.randint(1, 9)} for p in products]
    status = r.choice(["pending", "shipped", "delivered", "cancelled"])
    listed = ", ".join(f"{i['quantity']} x {i['product']}" for i in items)
    number = r.randint(10000, 99999)
    text = r.choice(
        [
            f"Order {number} ({status}): {listed}.",
            f"The order number {number} contains {listed}. Its status is {status}.",
            f"Customer asks about order #{number}, which is {status}; it has {listed}.",
        ]
    )
    return text, {"order_id": number, "status": status, "items": items}


def event(r: random.Random) -> tuple[str, dict[str, Any]]:
    what, month, day = r.choice(EVENTS), r.choice(MONTHS), r.randint(1, 28)
    hour, people = r.randint(8, 20), r.randint(1, 12)
    city = r.choice(CITIES)
    online = r.random() < 0.3
    where = "online" if online else f"in {city}"
    text = r.choice(
        [
            f"The {what} is on {month} {day} at {hour}:00 {where}, with {people} people attending.",
            f"Reminder: {what}, {day} {month}, {hour}:00, {where}. Expected attendees: {people}.",
            f"We scheduled a {what} for {month} {day}, starting at {hour}:00 {where}; {people} will come.",
        ]
    )
    return text, {
        "title": what,
        "month": month,
        "day": day,
        "hour": hour,
        "attendees": people,
        "online": online,
    }


def review(r: random.Random) -> tuple[str, dict[str, Any]]:
    product, stars = r.choice(PRODUCTS), r.randint(1, 5)
    good = {1: "terrible", 2: "disappointing", 3: "okay", 4: "good", 5: "excellent"}[stars]
    sentiment = "negative" if stars <= 2 else "neutral" if stars == 3 else "positive"
    name = r.choice(FIRST)
    again = "would not buy again" if stars < 3 else "would buy again"
    text = r.choice(
        [
            f"{name} rated the {product} {stars} out of 5 stars: '{good}, {again}'.",
            f"Review by {name}: the {product} is {good}. {stars}/5.",
            f"{stars} stars from {name} for the {product}. In short: {good}.",
        ]
    )
    return text, {"product": product, "stars": stars, "sentiment": sentiment, "reviewer": name}


TASKS = {"contact": contact, "order": order, "event": event, "review": review}


def main() -> None:
    r = random.Random(20261129)
    lines = []
    for task, make in TASKS.items():
        for i in range(50):
            text, expected = make(r)
            lines.append(
                json.dumps({"id": f"{task}-{i:02d}", "task": task, "text": text, "expected": expected})
            )
    (HERE / "prompts.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
