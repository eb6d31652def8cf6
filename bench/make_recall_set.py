"""Write bench/data/recall_eval.json: the evaluation set of bench/bench_recall.py.

Multi-session conversations between two friends, in the shape bench_recall.py documents. Each
conversation draws its own people, places and events from the pools below, plants them as facts in
chosen turns of chosen sessions, and surrounds them with small talk on the same topics (trips, pets,
work, family, food) so that a question's topic alone does not find its turn: the names, places and
dates in it must. Questions cite their evidence turn ids; ``temporal`` questions ask when something
happened or what happened in a month, which only the session dates answer; ``multi-hop`` ones need
two turns. Deterministic (seeded): rerun to regenerate the same file.

    python bench/make_recall_set.py
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "recall_eval.json"

PAIRS = [("Caroline", "Melanie"), ("Jon", "Gina"), ("Priya", "Tomasz"), ("Dev", "Hannah"), ("Lucas", "Amara"), ("Yuki", "Rosa"), ("Omar", "Elena"), ("Sam", "Ingrid")]
PEOPLE = ["Marco", "Lena", "Rafael", "Beatrice", "Kofi", "Sienna", "Henrik", "Aisha", "Matteo", "Nadia", "Felix", "Zara", "Callum", "Ines", "Tariq", "Greta", "Ruben", "Leila", "Oscar", "Mei"]
CITIES = ["Lisbon", "Kyoto", "Denver", "Edinburgh", "Marrakesh", "Vancouver", "Tallinn", "Oaxaca", "Melbourne", "Bergen", "Porto", "Seville", "Halifax", "Krakow", "Hanoi", "Valparaiso"]
LANDMARKS = ["the old cathedral", "the botanical garden", "the harbour lighthouse", "the night market", "the castle ruins", "the glass museum", "the hot springs", "the street-art quarter"]
COMPANIES = ["Brightline Logistics", "Northwind Health", "Fernhill Studios", "Quarry Labs", "Bluepeak Energy", "Oakridge Bank", "Tidewater Games", "Helix Robotics"]
ROLES = ["data analyst", "project manager", "nurse practitioner", "UX designer", "sous-chef", "software tester", "account manager", "lab technician"]
ANIMALS = [("puppy", "her"), ("kitten", "him"), ("rabbit", "her"), ("parrot", "him"), ("corgi", "her"), ("tabby cat", "her")]
PETNAMES = ["Biscuit", "Pepper", "Luna", "Waffles", "Mochi", "Ziggy", "Clementine", "Noodle", "Juniper", "Pickles"]
INSTRUMENTS = ["cello", "ukulele", "piano", "saxophone", "violin", "drums"]
BOOKS = [("The Glass Orchard", "Miriam Hale"), ("Salt and Sparrows", "Dmitri Vance"), ("A Map of Quiet Rivers", "Ada Okafor"), ("The Lantern Keeper", "Paulo Reyes"), ("Winter in Ostend", "Clara Moss"), ("Tin Horizons", "Jonah Pike")]
DISHES = ["mushroom risotto", "lamb tagine", "pad thai", "seafood paella", "pierogi", "chicken mole", "shakshuka", "ramen from scratch"]
ALLERGENS = ["shellfish", "walnuts", "kiwi", "sesame", "strawberries", "penicillin"]
CARS = ["Subaru Outback", "Toyota Prius", "Volvo estate", "Mini Cooper", "Honda Civic", "Kia EV6"]
COLORS = ["green", "silver", "dark blue", "red", "white"]
SCHOOLS = ["Riverside High", "Maple Grove Academy", "Lakeview College", "St Brendan's", "Hillcrest University"]
PARKS = ["Yosemite", "the Lake District", "Banff", "Zion", "the Cairngorms", "Torres del Paine"]
BANDS = ["The Paper Kites", "Khruangbin", "Fleet Foxes", "Arctic Monkeys", "Bon Iver", "Hozier"]
VENUES = ["Roundhouse", "Fillmore", "Paradiso", "Red Rocks", "Royal Albert Hall", "Apollo"]
ORGS = ["Eastside", "Harbor", "St Anne's", "Greenway", "Northgate"]
TIMES = ["1:52", "2:05", "1:47", "2:18", "1:58"]

# Small talk on the facts' own topics: what makes the topic alone useless for finding a fact.
SMALL_TALK = [
    "How was your weekend?", "Pretty quiet, mostly caught up on chores and laundry.", "Work has been hectic lately, so many meetings.",
    "I've been thinking about getting a pet someday, maybe when things calm down.", "Travel is so expensive these days, flights cost a fortune.",
    "The kids have been keeping me busy with school projects.", "Did you watch anything good this week?", "I finally fixed the leaky kitchen tap.",
    "My family is visiting soon, I need to tidy the guest room.", "I tried a new recipe but it didn't turn out great.",
    "We should plan a trip together sometime.", "The weather has been awful, rain every single day.", "I'm trying to read more books this year.",
    "My back has been sore from sitting at the desk all day.", "Our neighbours got a new dog, it barks all night.", "I miss travelling, it has been ages.",
    "Have you been to any concerts recently?", "I'm thinking of learning an instrument, any tips?", "Honestly I just need a holiday.",
    "The new job search is exhausting.", "We had a big family dinner on Sunday.", "I started going to the gym again.",
    "Cooking at home saves so much money.", "My brother called, he's doing fine.", "I love hearing about your adventures!",
    "That sounds like so much fun.", "Wow, I'm really happy for you!", "Oh no, I'm sorry to hear that.", "Tell me more about it!",
    "Let's catch up again soon, take care!", "Same here, it's been a long week.", "I can't believe how fast this year is going.",
    "We've been redecorating the living room.", "The car needs a service again, ugh.", "My cousin keeps sending me holiday photos.",
    "I volunteered a bit last month, it felt good.", "I need to book a doctor's appointment.", "Our garden is finally blooming.",
    "Work trip next month, not looking forward to the flight.", "We adopted a routine of evening walks.", "I've been learning to bake bread.",
    "The museum downtown has a new exhibition.", "My friend recommended a great novel.", "Do you still play music?",
    "School holidays are coming up, need to plan something.", "I'm glad we keep in touch like this.", "Any plans for the summer?",
]


def month_year(d: datetime) -> str:
    return d.strftime("%B %Y")


def facts(rng: random.Random, a: str, b: str) -> list[dict]:
    """Fact templates filled for one conversation: turns (speaker, text) and questions."""
    pick = rng.choice
    out = []
    animal, pr = pick(ANIMALS)
    pet = pick(PETNAMES)
    out.append({"turns": [(a, f"We finally adopted a {animal} last weekend! The kids named {pr} {pet}.")], "reply": "Aww, I can't wait to meet them!",
                "q": [(f"What is the name of {a}'s {animal}?", "single-hop", [0])]})
    city, mark = pick(CITIES), pick(LANDMARKS)
    out.append({"turns": [(b, f"I just got back from {city}, {mark} there was breathtaking.")], "reply": "That sounds amazing, I'd love to go.",
                "q": [(f"What did {b} see in {city}?", "single-hop", [0]), (f"When did {b} travel to {city}?", "temporal", [0])], "dated": ("visit", b)})
    company, role = pick(COMPANIES), pick(ROLES)
    out.append({"turns": [(a, f"Big news: I started a new job at {company} as a {role}.")], "reply": "Congratulations, that's huge!",
                "q": [(f"Which company does {a} work for as a {role}?", "single-hop", [0]), (f"When did {a} start working at {company}?", "temporal", [0])]})
    bro, city2 = pick(PEOPLE), pick(CITIES)
    out.append({"turns": [(b, f"My brother {bro} is moving to {city2} in the spring for his wife's job.")], "reply": "That's a big move, good for him.",
                "q": [(f"Where is {b}'s brother {bro} moving to?", "single-hop", [0])]})
    inst, teacher = pick(INSTRUMENTS), pick(PEOPLE)
    out.append({"turns": [(a, f"I've been taking {inst} lessons every Thursday with a teacher called {teacher}.")], "reply": "That's so cool, you'll have to play for me.",
                "q": [(f"Who teaches {a} to play the {inst}?", "single-hop", [0]), (f"What instrument is {a} learning?", "single-hop", [0])]})
    city3, t = pick(CITIES), pick(TIMES)
    out.append({"turns": [(b, f"I ran the {city3} half marathon yesterday and finished in {t}!")], "reply": "Incredible, you trained so hard for it.",
                "q": [(f"When did {b} run the {city3} half marathon?", "temporal", [0]), (f"What was {b}'s finishing time in the half marathon?", "single-hop", [0])]})
    book, author = pick(BOOKS)
    out.append({"turns": [(a, f"I'm reading '{book}' by {author} and I can't put it down.")], "reply": "Ooh, add it to my list.",
                "q": [(f"Which book by {author} is {a} reading?", "single-hop", [0])]})
    friend, dish = pick(PEOPLE), pick(DISHES)
    out.append({"turns": [(b, f"{friend} cooked us {dish} on Friday night, it was amazing.")], "reply": "Yum, I'm jealous.",
                "q": [(f"What did {friend} cook for {b}?", "single-hop", [0])]})
    allergen = pick(ALLERGENS)
    out.append({"turns": [(a, f"The doctor confirmed I'm allergic to {allergen}, so I have to be careful now.")], "reply": "Oh no, at least you know now.",
                "q": [(f"What is {a} allergic to?", "single-hop", [0])]})
    car, color = pick(CARS), pick(COLORS)
    out.append({"turns": [(b, f"We sold the old car and bought a {color} {car}.")], "reply": "Nice upgrade!",
                "q": [(f"What car did {b} buy?", "single-hop", [0]), (f"What colour is {b}'s {car}?", "single-hop", [0])]})
    kid, school = pick(PEOPLE), pick(SCHOOLS)
    out.append({"turns": [(a, f"My daughter {kid} graduated from {school} last Tuesday, I cried the whole ceremony.")], "reply": "That's such a proud moment.",
                "q": [(f"When did {a}'s daughter {kid} graduate?", "temporal", [0]), (f"Which school did {kid} graduate from?", "single-hop", [0])]})
    park = pick(PARKS)
    out.append({"turns": [(b, f"We're planning a camping trip to {park} next month with the kids.")], "reply": "Don't forget the bug spray!",
                "q": [(f"Where is {b} planning to go camping?", "single-hop", [0])]})
    band, venue = pick(BANDS), pick(VENUES)
    out.append({"turns": [(a, f"Saw {band} live at the {venue} last night, best gig of my life.")], "reply": "I'm so jealous, I love them.",
                "q": [(f"Which band did {a} see at the {venue}?", "single-hop", [0]), (f"When did {a} see {band} live?", "temporal", [0])], "dated": ("gig", a)})
    org = pick(ORGS)
    out.append({"turns": [(b, f"I volunteered at the {org} food bank on Saturday morning.")], "reply": "That's really kind of you.",
                "q": [(f"Where did {b} volunteer?", "single-hop", [0])]})
    cousin, city4 = pick(PEOPLE), pick(CITIES)
    out.append({"turns": [(a, f"My cousin {cousin} lives in {city4} now, right by the river."), (a, f"I'm flying out to visit {cousin} next week, so excited.")],
                "reply": "Have a wonderful time!",
                "q": [(f"Which city is {a} flying to in order to visit family?", "multi-hop", [0, 1]), (f"Where does {a}'s cousin {cousin} live?", "single-hop", [0])]})
    # The same kinds of events told about other people: the topic and the kind of answer match,
    # only the names tell them apart.
    other, other_pet, (other_animal, _) = pick(PEOPLE), pick(PETNAMES), pick(ANIMALS)
    out.append({"turns": [(b, f"My colleague {other} adopted a {other_animal} called {other_pet}, she shows me photos all day.")], "reply": "Cute!", "q": []})
    other2, inst2 = pick(PEOPLE), pick(INSTRUMENTS)
    out.append({"turns": [(b, f"{other2} from work has started {inst2} lessons too, every Monday evening.")], "reply": "Everyone is getting musical.", "q": []})
    other3, city5 = pick(PEOPLE), pick(CITIES)
    out.append({"turns": [(a, f"My friend {other3} is moving to {city5} next year, I'll miss her.")], "reply": "That's hard, but you can visit.", "q": []})
    other4, dish2 = pick(PEOPLE), pick(DISHES)
    out.append({"turns": [(a, f"{other4} made {dish2} for the potluck on Sunday, everyone loved it.")], "reply": "Potlucks are the best.", "q": []})
    other5, company2 = pick(PEOPLE), pick(COMPANIES)
    out.append({"turns": [(b, f"My sister-in-law {other5} got hired at {company2} last week.")], "reply": "Good for her!", "q": []})
    # Second trips and gigs: only the date says which one a question means.
    for who in (a, b):
        out.append({"turns": [(who, f"Back home after a long weekend in {pick(CITIES)}, the food was incredible.")], "reply": "Welcome back!", "q": [], "dated": ("visit", who)})
        out.append({"turns": [(who, f"We went to see {pick(BANDS)} in concert, what a show.")], "reply": "Sounds like a great night.", "q": [], "dated": ("gig", who)})
    return out


def conversation(rng: random.Random, idx: int, a: str, b: str) -> dict:
    cid = f"conv-{idx + 1}"
    n_sessions = 8
    start = datetime(2023, 1, 10, 18, 0) + timedelta(days=rng.randint(0, 120))
    dates = [start + timedelta(days=sum(rng.randint(9, 30) for _ in range(i))) for i in range(n_sessions)]
    planted = facts(rng, a, b)
    rng.shuffle(planted)
    # Each fact goes into one session; a multi-hop fact's second turn into a later one.
    where = {}
    for fi, f in enumerate(planted):
        s = fi % n_sessions
        where[fi] = [s] if len(f["turns"]) == 1 else [min(s, n_sessions - 2), n_sessions - 1]
    sessions, questions, turn_no = [], [], 0
    fact_turn_ids: dict[tuple[int, int], str] = {}
    for si, date in enumerate(dates):
        items = [(fi, ti) for fi, ss in where.items() for ti, s in enumerate(ss) if s == si]
        n_small = rng.randint(10, 14)
        talk = rng.sample(SMALL_TALK, n_small)
        slots = sorted(rng.sample(range(1, n_small), min(len(items), n_small - 1)))
        turns, speaker_i = [], 0
        queue = dict(zip(slots, items))
        for pos, line in enumerate(talk):
            if pos in queue:
                fi, ti = queue[pos]
                spk, text = planted[fi]["turns"][ti]
                turn_no += 1
                tid = f"{cid}-t{turn_no}"
                turns.append({"id": tid, "speaker": spk, "text": text})
                fact_turn_ids[(fi, ti)] = tid
                turn_no += 1
                turns.append({"id": f"{cid}-t{turn_no}", "speaker": b if spk == a else a, "text": planted[fi]["reply"]})
                speaker_i = 0 if spk == b else 1
            turn_no += 1
            turns.append({"id": f"{cid}-t{turn_no}", "speaker": (a, b)[speaker_i % 2], "text": line})
            speaker_i += 1
        sessions.append({"id": f"{cid}-s{si + 1}", "date": date.strftime("%Y-%m-%dT%H:%M:%S"), "turns": turns})
    qn = 0
    for fi, f in enumerate(planted):
        for text, cat, turn_idx in f["q"]:
            ev = [fact_turn_ids[(fi, ti)] for ti in turn_idx if (fi, ti) in fact_turn_ids]
            if len(ev) == len(turn_idx):
                qn += 1
                questions.append({"id": f"{cid}-q{qn}", "text": text, "evidence": ev, "category": cat})
    # "Which city did X visit in <month>?": every X's trip (and gig) has a twin in another session.
    dated: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for fi, f in enumerate(planted):
        if "dated" in f and (fi, 0) in fact_turn_ids:
            dated.setdefault(f["dated"], []).append((where[fi][0], fact_turn_ids[(fi, 0)]))
    for (kind, who), told in sorted(dated.items()):
        months = [month_year(dates[si]) for si, _ in told]
        for (si, tid), my in zip(told, months):
            if months.count(my) == 1:
                qn += 1
                text = f"Which city did {who} visit in {my}?" if kind == "visit" else f"Which band did {who} see live in {my}?"
                questions.append({"id": f"{cid}-q{qn}", "text": text, "evidence": [tid], "category": "temporal"})
    return {"id": cid, "speakers": [a, b], "sessions": sessions, "questions": questions}


def main() -> None:
    rng = random.Random(8)
    data = {
        "description": "mindstore recall evaluation set: multi-session conversations with planted facts (bench/make_recall_set.py)",
        "conversations": [conversation(rng, i, a, b) for i, (a, b) in enumerate(PAIRS)],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    turns = sum(len(s["turns"]) for c in data["conversations"] for s in c["sessions"])
    qs = sum(len(c["questions"]) for c in data["conversations"])
    print(f"{OUT}: {len(data['conversations'])} conversations, {turns} turns, {qs} questions")


if __name__ == "__main__":
    main()
