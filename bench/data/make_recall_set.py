"""Write bench/data/recall_set.json: the memory-recall evaluation set, deterministically.

    python bench/data/make_recall_set.py [--check]

Four people, each a namespace, each with the same *families* of facts filled with their own
names and numbers, buried among generic distractor exchanges. A family is one kind of
fact and the question that should recall it:

    paraphrase  the question shares no content word with the memory
    entity      linked only through an entity ("car" -> "Honda Civic")
    lexical     the question names an exact name or code the memory spells
    update      an older memory and a newer one that corrects it (supersession)
    pair        the question needs two memories
    none        nothing relevant is stored for this question
    isolation   the answer is stored, but only in another person's namespace

The split is by family, once, with a fixed seed: a family's wording is either in the
tuning half or in the held-out half, never both, so held-out questions are phrased in
ways the tuning never saw. `--check` verifies the file on disk matches a fresh build.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SEED = 20261127
SPLIT_SEED = 7
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OUT = Path(__file__).with_name("recall_set.json")
PEOPLE = ["ana", "ben", "chloe", "dev"]
DISTRACTORS_PER_PERSON = 540

# A family: kind, area, facts (templates, filled per person), probes (one is picked per
# person, in turn), and slot values per person. Update families have two facts: older, newer.
FAMILIES: list[dict[str, Any]] = [
    {"id": "car", "kind": "entity", "area": "vehicle",
     "facts": ["I drive a {year} {car} with {miles} miles on it."],
     "probes": ["What maintenance does my vehicle need soon?",
                "Is my automobile getting too old to keep?"],
     "slots": [{"year": 2015, "car": "Honda Civic", "miles": "140,000"},
               {"year": 2019, "car": "Toyota Corolla", "miles": "62,000"},
               {"year": 2011, "car": "Subaru Outback", "miles": "188,000"},
               {"year": 2021, "car": "Mazda 3", "miles": "31,000"}]},
    {"id": "diagnosis", "kind": "paraphrase", "area": "health",
     "facts": ["I was diagnosed with {cond} last {month}."],
     "probes": ["Which medical issue should a doctor keep in mind for me?",
                "What chronic illness do I live with?"],
     "slots": [{"cond": "type 2 diabetes", "month": "March"},
               {"cond": "high blood pressure", "month": "June"},
               {"cond": "asthma", "month": "January"},
               {"cond": "celiac disease", "month": "October"}]},
    {"id": "kid_birthday", "kind": "paraphrase", "area": "family",
     "facts": ["My daughter {kid} turns {age} on {date}."],
     "probes": ["When is my child's birthday party due?", "How old will my girl be soon?"],
     "slots": [{"kid": "Ana", "age": 6, "date": "May 12"},
               {"kid": "Mia", "age": 9, "date": "August 3"},
               {"kid": "Zoe", "age": 4, "date": "February 20"},
               {"kid": "Lily", "age": 12, "date": "December 1"}]},
    {"id": "dog", "kind": "entity", "area": "pets",
     "facts": ["We adopted a {breed} puppy named {pet}."],
     "probes": ["What kind of dog do we have?", "Which pooch lives with us?"],
     "slots": [{"breed": "beagle", "pet": "Biscuit"},
               {"breed": "border collie", "pet": "Scout"},
               {"breed": "golden retriever", "pet": "Maple"},
               {"breed": "dachshund", "pet": "Otto"}]},
    {"id": "allergy", "kind": "paraphrase", "area": "food",
     "facts": ["I'm allergic to {allergen}; even traces make me sick."],
     "probes": ["Suggest a dinner recipe I can safely eat.",
                "Which ingredients must my meals leave out?"],
     "slots": [{"allergen": "peanuts"}, {"allergen": "shellfish"}, {"allergen": "sesame"},
               {"allergen": "tree nuts"}]},
    {"id": "codename", "kind": "lexical", "area": "work",
     "facts": ["Our team's project is codenamed {code} and it launches in {month}."],
     "probes": ["When does {code} launch?", "What is the deadline for {code}?"],
     "slots": [{"code": "Falcon", "month": "March"}, {"code": "Juniper", "month": "July"},
               {"code": "Nimbus", "month": "September"}, {"code": "Quartz", "month": "May"}]},
    {"id": "manager", "kind": "paraphrase", "area": "work",
     "facts": ["My manager {boss} wants status updates every Friday."],
     "probes": ["Who is my boss?", "To whom do I report at the office?"],
     "slots": [{"boss": "Priya"}, {"boss": "Marcus"}, {"boss": "Helen"}, {"boss": "Tomas"}]},
    {"id": "house_saving", "kind": "paraphrase", "area": "finance",
     "facts": ["We're saving {amount} each month for a down payment."],
     "probes": ["How are we putting money aside to buy a home?",
                "What is our plan for purchasing property?"],
     "slots": [{"amount": "$1,500"}, {"amount": "$800"}, {"amount": "$2,200"},
               {"amount": "$1,000"}]},
    {"id": "conference", "kind": "entity", "area": "travel",
     "facts": ["I'm flying to {city} for a conference in {month}."],
     "probes": ["Which trip abroad is coming up?", "Where am I travelling for business?"],
     "slots": [{"city": "Lisbon", "month": "April"}, {"city": "Tokyo", "month": "June"},
               {"city": "Toronto", "month": "September"}, {"city": "Berlin", "month": "May"}]},
    {"id": "guitar", "kind": "entity", "area": "hobbies",
     "facts": ["I practise on my {model} every evening."],
     "probes": ["What instrument do I own?", "Which string instrument do I play?"],
     "slots": [{"model": "Martin D-28"}, {"model": "Fender Stratocaster"},
               {"model": "Gibson Les Paul"}, {"model": "Yamaha FG800"}]},
    {"id": "language", "kind": "entity", "area": "learning",
     "facts": ["I'm studying {lang} because we're relocating to {country} next year."],
     "probes": ["Which foreign tongue am I picking up?", "What language course am I taking?"],
     "slots": [{"lang": "Portuguese", "country": "Brazil"},
               {"lang": "Japanese", "country": "Japan"},
               {"lang": "German", "country": "Austria"}, {"lang": "Italian", "country": "Italy"}]},
    {"id": "database", "kind": "lexical", "area": "tech",
     "facts": ["Our API runs on {db} {ver}, hosted on {cloud}."],
     "probes": ["Which version of {db} does the API use?", "Where is the API hosted?"],
     "slots": [{"db": "Postgres", "ver": "15", "cloud": "AWS"},
               {"db": "MySQL", "ver": "8.0", "cloud": "GCP"},
               {"db": "MongoDB", "ver": "7", "cloud": "Azure"},
               {"db": "SQLite", "ver": "3.45", "cloud": "Hetzner"}]},
    {"id": "race", "kind": "paraphrase", "area": "fitness",
     "facts": ["I'm training for a half marathon in {month}; my Sunday runs are {km} km now."],
     "probes": ["How far do I jog at the weekend these days?",
                "What endurance event am I preparing for?"],
     "slots": [{"month": "April", "km": 14}, {"month": "October", "km": 16},
               {"month": "May", "km": 12}, {"month": "March", "km": 18}]},
    {"id": "faucet", "kind": "paraphrase", "area": "home",
     "facts": ["The {room} faucet has been dripping for {weeks} weeks."],
     "probes": ["Which household repair is overdue?", "What needs fixing around the house?"],
     "slots": [{"room": "kitchen", "weeks": "two"}, {"room": "bathroom", "weeks": "three"},
               {"room": "kitchen", "weeks": "five"}, {"room": "laundry", "weeks": "two"}]},
    {"id": "wedding", "kind": "paraphrase", "area": "social",
     "facts": ["My best friend {friend} is getting married in {month}."],
     "probes": ["Whose wedding am I attending?", "Which ceremony should I buy a gift for?"],
     "slots": [{"friend": "Sofia", "month": "June"}, {"friend": "Jake", "month": "August"},
               {"friend": "Nadia", "month": "May"}, {"friend": "Leo", "month": "September"}]},
    {"id": "garden", "kind": "paraphrase", "area": "garden",
     "facts": ["I planted {n} tomato seedlings along the back fence."],
     "probes": ["What's growing in my yard?", "Which vegetables did I put in the ground?"],
     "slots": [{"n": 6}, {"n": 12}, {"n": 8}, {"n": 4}]},
    {"id": "medication", "kind": "entity", "area": "health",
     "facts": ["I take {med} every morning with breakfast."],
     "probes": ["What pills am I on?", "Which prescription drugs do I use?"],
     "slots": [{"med": "metformin"}, {"med": "lisinopril"}, {"med": "levothyroxine"},
               {"med": "atorvastatin"}]},
    {"id": "son_sport", "kind": "entity", "area": "family",
     "facts": ["My son {son} plays {sport} every Saturday morning."],
     "probes": ["What does my boy do on weekends?", "Which team activity keeps my kid busy?"],
     "slots": [{"son": "Noah", "sport": "soccer"}, {"son": "Eli", "sport": "basketball"},
               {"son": "Sam", "sport": "hockey"}, {"son": "Arjun", "sport": "cricket"}]},
    {"id": "rent", "kind": "paraphrase", "area": "home",
     "facts": ["Our landlord raised the rent to {rent} a month."],
     "probes": ["How much do we pay for housing?", "What does our apartment cost us?"],
     "slots": [{"rent": "$2,100"}, {"rent": "$1,650"}, {"rent": "$2,800"}, {"rent": "$1,200"}]},
    {"id": "loans", "kind": "paraphrase", "area": "finance",
     "facts": ["I still owe {debt} on my student loans."],
     "probes": ["How much debt from college do I carry?",
                "What's left to repay from my university years?"],
     "slots": [{"debt": "$18,000"}, {"debt": "$42,000"}, {"debt": "$7,500"},
               {"debt": "$26,000"}]},
    {"id": "talk", "kind": "paraphrase", "area": "work",
     "facts": ["I'm preparing a talk on {topic} for the {city} meetup."],
     "probes": ["What presentation am I working on?", "Which speech do I need to rehearse?"],
     "slots": [{"topic": "event sourcing", "city": "Berlin"},
               {"topic": "feature flags", "city": "Austin"},
               {"topic": "data privacy", "city": "Dublin"},
               {"topic": "GraphQL caching", "city": "Madrid"}]},
    {"id": "laptop", "kind": "entity", "area": "tech",
     "facts": ["My {laptop} is getting slow when I edit video."],
     "probes": ["What computer do I use?", "Which machine do I work on?"],
     "slots": [{"laptop": "MacBook Air"}, {"laptop": "ThinkPad X1"}, {"laptop": "Dell XPS 13"},
               {"laptop": "Surface Laptop"}]},
    {"id": "passport", "kind": "paraphrase", "area": "travel",
     "facts": ["My passport expires in {month} {year}."],
     "probes": ["When does my travel document run out?",
                "Do I need to renew my ID for going overseas?"],
     "slots": [{"month": "January", "year": 2027}, {"month": "March", "year": 2027},
               {"month": "July", "year": 2028}, {"month": "December", "year": 2026}]},
    {"id": "coffee", "kind": "entity", "area": "food",
     "facts": ["I drink {n} cups of espresso a day."],
     "probes": ["How much caffeine do I have daily?", "What's my usual morning beverage?"],
     "slots": [{"n": "three"}, {"n": "four"}, {"n": "two"}, {"n": "five"}]},
    {"id": "craft", "kind": "paraphrase", "area": "hobbies",
     "facts": ["I'm {craft} a {item} for my niece's birthday."],
     "probes": ["What handmade present am I making?", "Which project keeps my hands busy?"],
     "slots": [{"craft": "knitting", "item": "sweater"}, {"craft": "carving", "item": "wooden toy"},
               {"craft": "sewing", "item": "quilt"}, {"craft": "painting", "item": "portrait"}]},
    {"id": "volunteer", "kind": "paraphrase", "area": "social",
     "facts": ["I volunteer at the {place} every {day}."],
     "probes": ["Where do I help out unpaid?", "What charity work do I do?"],
     "slots": [{"place": "food bank", "day": "Tuesday"},
               {"place": "animal shelter", "day": "Sunday"},
               {"place": "public library", "day": "Thursday"},
               {"place": "soup kitchen", "day": "Saturday"}]},
    {"id": "course", "kind": "paraphrase", "area": "learning",
     "facts": ["I enrolled in an evening {course} class at the community college."],
     "probes": ["What am I taking lessons in?", "Which subject do I study at night?"],
     "slots": [{"course": "pottery"}, {"course": "accounting"}, {"course": "photography"},
               {"course": "welding"}]},
    {"id": "cat", "kind": "lexical", "area": "pets",
     "facts": ["Our cat {cat} needs her thyroid medication twice a day."],
     "probes": ["When does {cat} get her pills?", "How often does {cat} need medicine?"],
     "slots": [{"cat": "Luna"}, {"cat": "Pepper"}, {"cat": "Mochi"}, {"cat": "Willow"}]},
    {"id": "ticket", "kind": "lexical", "area": "work",
     "facts": ["Ticket {ticket} about the login timeout is blocking the release."],
     "probes": ["What is the status of {ticket}?", "Why is {ticket} urgent?"],
     "slots": [{"ticket": "OPS-4312"}, {"ticket": "BUG-771"}, {"ticket": "PAY-2093"},
               {"ticket": "WEB-118"}]},
    {"id": "bloodpressure", "kind": "lexical", "area": "health",
     "facts": ["My blood pressure reading this morning was {bp}."],
     "probes": ["What was my latest blood pressure?", "Is my blood pressure under control?"],
     "slots": [{"bp": "142/91"}, {"bp": "128/84"}, {"bp": "135/88"}, {"bp": "118/76"}]},
    {"id": "mortgage_rate", "kind": "lexical", "area": "finance",
     "facts": ["Our mortgage rate is {rate} fixed until {year}."],
     "probes": ["When does our fixed mortgage rate end?", "What mortgage rate do we pay?"],
     "slots": [{"rate": "3.1%", "year": 2029}, {"rate": "4.6%", "year": 2028},
               {"rate": "2.9%", "year": 2030}, {"rate": "5.2%", "year": 2027}]},
    # supersession: the newer memory corrects the older
    {"id": "diet", "kind": "update", "area": "food",
     "facts": ["I'm {old}; no meat for me.", "I changed my diet: I'm {new} now."],
     "probes": ["What do I eat these days?", "Which foods fit my current way of eating?"],
     "slots": [{"old": "vegetarian", "new": "pescatarian"}, {"old": "vegan", "new": "vegetarian"},
               {"old": "vegetarian", "new": "keto"}, {"old": "vegan", "new": "pescatarian"}]},
    {"id": "city", "kind": "update", "area": "home",
     "facts": ["We live in {old} and love the neighbourhood.",
               "We just moved to {new}; the boxes are still everywhere."],
     "probes": ["Where is home for us?", "Which town are we based in?"],
     "slots": [{"old": "Denver", "new": "Portland"}, {"old": "Chicago", "new": "Austin"},
               {"old": "Boston", "new": "Seattle"}, {"old": "Phoenix", "new": "Atlanta"}]},
    {"id": "job", "kind": "update", "area": "work",
     "facts": ["I work as a {old_role} at {old_co}.",
               "I accepted an offer as a {new_role} at {new_co}; I start Monday."],
     "probes": ["What's my current occupation?", "Who employs me?"],
     "slots": [{"old_role": "nurse", "old_co": "Mercy Hospital", "new_role": "clinic manager",
                "new_co": "CityHealth"},
               {"old_role": "data analyst", "old_co": "Acme Corp", "new_role": "data engineer",
                "new_co": "Streamly"},
               {"old_role": "teacher", "old_co": "Lincoln High", "new_role": "curriculum designer",
                "new_co": "EduWorks"},
               {"old_role": "backend developer", "old_co": "Finlo", "new_role": "engineering lead",
                "new_co": "Orbitly"}]},
    {"id": "phone", "kind": "update", "area": "tech",
     "facts": ["I use an {old} and the battery is fine.",
               "I switched to a {new} last week."],
     "probes": ["Which handset do I carry?", "What mobile do I have now?"],
     "slots": [{"old": "iPhone 12", "new": "Pixel 8"}, {"old": "iPhone 13", "new": "Galaxy S24"},
               {"old": "Pixel 6", "new": "iPhone 15"}, {"old": "Galaxy S21", "new": "Pixel 9"}]},
    {"id": "gym_time", "kind": "update", "area": "fitness",
     "facts": ["I go to the gym at {old} before work.",
               "I now work out at {new}, after the kids are asleep."],
     "probes": ["When do I exercise?", "What time is my fitness session?"],
     "slots": [{"old": "6am", "new": "8pm"}, {"old": "7am", "new": "9pm"},
               {"old": "5:30am", "new": "7:30pm"}, {"old": "6:30am", "new": "8:30pm"}]},
    {"id": "commute", "kind": "update", "area": "vehicle",
     "facts": ["I take the {old} to the office every day.",
               "I commute by {new} now instead."],
     "probes": ["How do I get to my job?", "What's my way of travelling to work?"],
     "slots": [{"old": "bus", "new": "e-bike"}, {"old": "train", "new": "car"},
               {"old": "subway", "new": "bicycle"}, {"old": "car", "new": "train"}]},
    {"id": "salary", "kind": "update", "area": "finance",
     "facts": ["My salary is {old} a year.", "I got a raise; my salary is {new} now."],
     "probes": ["How much do I earn?", "What's my annual pay?"],
     "slots": [{"old": "$64,000", "new": "$71,000"}, {"old": "$88,000", "new": "$97,000"},
               {"old": "$52,000", "new": "$58,500"}, {"old": "$120,000", "new": "$134,000"}]},
    {"id": "dentist", "kind": "update", "area": "health",
     "facts": ["My dentist is Dr. {old}.", "I switched dentists; I see Dr. {new} now."],
     "probes": ["Who looks after my teeth?", "Which oral health clinic do I visit?"],
     "slots": [{"old": "Alvarez", "new": "Kim"}, {"old": "Novak", "new": "Osei"},
               {"old": "Brennan", "new": "Ito"}, {"old": "Haddad", "new": "Larsen"}]},
    {"id": "standup", "kind": "update", "area": "work",
     "facts": ["Our daily standup is at {old}.", "The daily standup moved to {new}."],
     "probes": ["When is the morning team sync?", "What time do we meet each day at work?"],
     "slots": [{"old": "9am", "new": "10:30am"}, {"old": "9:15am", "new": "11am"},
               {"old": "10am", "new": "9am"}, {"old": "8:45am", "new": "9:30am"}]},
    {"id": "book", "kind": "update", "area": "hobbies",
     "facts": ["I'm reading {old} before bed.", "I finished {old} and started {new}."],
     "probes": ["What novel am I in the middle of?", "Which book is on my nightstand?"],
     "slots": [{"old": "Dune", "new": "Middlemarch"}, {"old": "Beloved", "new": "Circe"},
               {"old": "The Hobbit", "new": "Piranesi"}, {"old": "Emma", "new": "Shogun"}]},
    # two memories needed
    {"id": "anniversary", "kind": "pair", "area": "family",
     "facts": ["My partner {partner} is {diet} and loves {cuisine} food.",
               "Our wedding anniversary is on {date}."],
     "probes": ["Plan a celebration dinner for my spouse on our special day.",
                "Help me organise a romantic evening out for the two of us."],
     "slots": [{"partner": "Sam", "diet": "vegan", "cuisine": "Thai", "date": "June 8"},
               {"partner": "Rosa", "diet": "gluten-free", "cuisine": "Mexican",
                "date": "October 2"},
               {"partner": "Jon", "diet": "vegetarian", "cuisine": "Indian", "date": "April 17"},
               {"partner": "Kai", "diet": "dairy-free", "cuisine": "Korean",
                "date": "September 25"}]},
    {"id": "mom_surgery", "kind": "pair", "area": "family",
     "facts": ["My mother lives alone in {town}, two hours away.",
               "Mom's knee surgery is scheduled for {month}."],
     "probes": ["How can I support my mom while she recovers?",
                "What should I arrange to care for my mother after her operation?"],
     "slots": [{"town": "Sacramento", "month": "December"}, {"town": "Leeds", "month": "January"},
               {"town": "Tucson", "month": "February"}, {"town": "Halifax", "month": "November"}]},
    {"id": "vacation", "kind": "pair", "area": "travel",
     "facts": ["I have {days} days of leave left this year.",
               "I've always dreamed of seeing {place}."],
     "probes": ["Help me use my remaining time off for a bucket-list journey.",
                "Could I fit a dream holiday into the leave I have left?"],
     "slots": [{"days": 9, "place": "the Northern Lights in Norway"},
               {"days": 12, "place": "Machu Picchu"},
               {"days": 6, "place": "the temples of Kyoto"},
               {"days": 15, "place": "the Great Barrier Reef"}]},
    {"id": "review", "kind": "pair", "area": "work",
     "facts": ["{colleague} leads the analytics team and owns the revenue dashboard.",
               "The quarterly business review is on {date}."],
     "probes": ["Who should present revenue numbers at the upcoming quarterly business review?",
                "Which analytics lead do I ask for figures before the quarterly review?"],
     "slots": [{"colleague": "Grace", "date": "January 14"},
               {"colleague": "Omar", "date": "December 9"},
               {"colleague": "Ines", "date": "February 3"},
               {"colleague": "Victor", "date": "January 22"}]},
    # nothing relevant is stored
    {"id": "blood_type", "kind": "none", "area": "health", "facts": [],
     "probes": ["What is my blood type?", "Which blood group am I?"]},
    {"id": "shoe_size", "kind": "none", "area": "shopping", "facts": [],
     "probes": ["What shoe size do I wear?", "Which size of sneakers fits me?"]},
    {"id": "grandmother", "kind": "none", "area": "family", "facts": [],
     "probes": ["What was my grandmother's maiden name?", "Where was my grandma born?"]},
    {"id": "streaming", "kind": "none", "area": "leisure", "facts": [],
     "probes": ["Which streaming services am I subscribed to?",
                "What TV subscriptions do I pay for?"]},
    {"id": "height", "kind": "none", "area": "health", "facts": [],
     "probes": ["How tall am I?", "What is my height in centimetres?"]},
    {"id": "boardgame", "kind": "none", "area": "leisure", "facts": [],
     "probes": ["What's my favourite board game?", "Which tabletop game do I like best?"]},
    # stored only in the first person's namespace: the others must not see it
    {"id": "boat", "kind": "isolation", "area": "hobbies",
     "facts": ["I keep a sailboat called {boat} at the {marina} marina."],
     "probes": ["What is the name of my boat?", "Where is my sailboat moored?"],
     "slots": [{"boat": "Seabird", "marina": "Harbor Point"}]},
    {"id": "locker", "kind": "isolation", "area": "fitness",
     "facts": ["My gym locker code is {code}."],
     "probes": ["What's the combination for my gym locker?", "Remind me of my locker code."],
     "slots": [{"code": "4-17-29"}]},
]

RESPONSES = {
    "vehicle": "Keep up with oil changes and check the brakes and tyres.",
    "health": "Thanks for telling me; I'll keep that in mind when we talk about health.",
    "family": "That's lovely; I'll remember it for planning.",
    "pets": "Noted; happy to help with care routines.",
    "food": "Got it; I'll keep that in mind for recipes.",
    "work": "Understood; I'll take that into account for work questions.",
    "finance": "Good to know; that helps with budgeting.",
    "travel": "Noted; I can help plan around it.",
    "hobbies": "That sounds fun; I'll remember it.",
    "learning": "Great; I can suggest study routines.",
    "tech": "Noted for technical questions.",
    "fitness": "Good plan; build up gradually and rest well.",
    "home": "Noted; I can help with plans around the house.",
    "social": "How nice; I'll keep it in mind.",
    "garden": "Water them deeply and stake them as they grow.",
}

# Generic exchanges: none of them states anything the probes ask about.
_TASKS = """boil an egg perfectly|fold a fitted sheet|remove a red wine stain|unclog a drain
|write a cover letter|negotiate a lower phone bill|clean a cast iron pan|tie a bow tie
|sharpen a kitchen knife|make sourdough starter|descale a kettle|iron a dress shirt
|set up a home router|back up photos|change a flat bicycle tire|hang a picture straight
|make cold brew|get rid of fruit flies|write a thank-you note|organise a closet
|meditate for ten minutes|start journaling|learn to juggle|make a paper airplane
|brew green tea properly|season a wok|repot a succulent|clean a laptop keyboard
|remove a splinter|pack a suitcase efficiently|memorise a speech|fall asleep faster
|write a haiku|draw a cartoon face|make pancakes fluffy|cook rice without a cooker
|patch a hole in drywall|paint a room evenly|defrost a freezer|wash a wool sweater
|fix a squeaky door|bleed a radiator|calculate a tip|convert Celsius to Fahrenheit
|read a nutrition label|make a budget spreadsheet|plan a birthday surprise for a coworker
|teach a parrot words|whistle with two fingers|solve a Rubik's cube|play chess openings
|improve handwriting|speed read|take better phone photos|edit a podcast|start a blog
|write a limerick|make a smoothie bowl|roast a chicken|grill vegetables|make hummus
|pickle cucumbers|brew kombucha|make a terrarium|build a birdhouse|clean windows streak-free
|polish silver|remove rust from tools|sew on a button|hem trousers|shine shoes
|remove gum from hair|keep cut flowers fresh|compost kitchen scraps|choose a ripe avocado
|store fresh herbs|make vinaigrette|whip cream by hand|temper chocolate|bake macarons
|make a paper crane|tie a bowline knot|start a campfire safely|read a topographic map
|write a resignation letter politely|prepare for a job interview|give constructive feedback
|run an effective meeting|write clear emails|estimate a project timeline|name a podcast
|pick a font for a poster|choose a houseplant for low light|frame a photograph""".replace(
    "\n", "").split("|")
_CONCEPTS = """photosynthesis|black holes|inflation|compound interest|the stock market
|blockchain|quantum entanglement|the water cycle|plate tectonics|the French Revolution
|the Roman Empire|machine learning|DNS|TCP handshakes|vaccines|the immune system
|climate change|the Pythagorean theorem|supply and demand|the Silk Road|impressionism
|baroque music|the offside rule|haiku structure|tides|rainbows|the placebo effect
|game theory|opportunity cost|the Doppler effect|entropy|evolution|continental drift
|the printing press|the Renaissance|jazz improvisation|the Fibonacci sequence|prime numbers
|the Turing test|recursion|public key cryptography|the greenhouse effect|volcanoes
|hurricanes|the northern hemisphere seasons|sourdough fermentation|caramelisation
|the Maillard reaction|origami|the Olympic games|the history of tea|chess notation""".replace(
    "\n", "").split("|")
_KINDS = ["a fun fact", "a short poem", "a joke", "a riddle", "a trivia question",
          "a one-line summary", "an analogy", "a bedtime story opening"]
_SUBJECTS = ["penguins", "the moon", "octopuses", "volcanoes", "libraries", "trains",
             "bees", "deserts", "lighthouses", "clocks", "rainforests", "comets", "bridges",
             "mushrooms", "whales", "owls", "glaciers", "pyramids", "kites", "robots"]
# Generic questions on the same areas as the facts: hard negatives, personal in topic only.
_TOPICAL = """How often should tyres be rotated?|What does a timing belt do?|Is leasing a car
smart?|What are common symptoms of seasonal allergies?|How do I train a puppy to sit?
|Is renting or buying a home better?|How do I prepare for my first 10k?|Which foods are high
in protein?|How do I ask for a raise?|What should I pack for a work conference?|How do people
learn a language fast?|How do I choose a good dentist?|What is a healthy resting heart rate?
|How do I lower my grocery bill?|What's a good gift for a retiring colleague?|How do I keep
houseplants alive while travelling?|What is an index fund?|How do I write a project status
update?|How long do phone batteries last?|What are good stretches after running?|How do I
plan a surprise party?|Which vegetables grow well in pots?|How do I get my toddler to sleep?
|What vaccines do cats need?|How much should an emergency fund hold?|What's the best way to
study for an exam?|How do I clean a bicycle chain?|What should I ask at a parent-teacher
meeting?|How do I reduce screen time?|What is a credit score?|How do I start running again
after an injury?|How do I make friends in a new city?|What's a good weekday breakfast?
|How do I fix a slow Wi-Fi connection?|How can I sleep better before a flight?|What are
signs of burnout?|How do I host a book club?|Which houseplants are safe for pets?|What
should I look for when renting an apartment?|How often should I replace running shoes?""".replace(
    "\n", " ").split("|")
_CHATTER = ["I had a long day, cheer me up.", "I'm bored, any ideas?",
            "Tell me something interesting.", "Good morning! What should I think about today?",
            "Can you recommend a podcast genre?", "What's a good name for a goldfish?",
            "Give me a motivational quote.", "Suggest a word game to play.",
            "What's a productive way to spend a rainy afternoon?",
            "Recommend a classic film from the 1950s."]


# Statements, as the person tells facts: passing remarks and other people's news on the same
# areas as the facts. Hard negatives for "a told fact outranks a question": each is told,
# none answers a probe (third parties, one-off moments, opinions; no lasting fact of theirs).
_OTHERS = ["My neighbour", "My colleague Sam", "A friend from school", "My cousin",
           "My manager's partner", "Someone at the gym", "My sister's friend", "A coworker"]
_OTHERS_NEWS = """bought a second-hand electric car|was diagnosed with a sprained ankle
|has a daughter who turns seven in spring|started a new job at a bank|adopted a rescue
greyhound|moved to a flat near the river|is training for a triathlon|switched to a vegan
diet|booked a trip to Iceland|is learning the cello|renovated their kitchen|took out a big
mortgage|got promoted to team lead|is allergic to cats|runs a small bakery|planted an apple
tree|sold their motorbike|bought a new laptop|is planning a wedding in June|joined a hiking
club""".replace("\n", " ").split("|")
_REMARKS = """I watched a documentary about {c} last night.|I read an article on {c} this
morning.|I finally understood {c} after a long podcast.|I saw a great video explaining {c}.
|I argued with a friend about {c} over dinner.|I'm curious about {c} lately.""".replace(
    "\n", " ").split("|")
_MOMENTS = ["It rained all afternoon and I stayed in.", "I missed the bus this morning.",
            "The coffee shop downstairs changed its menu.", "I cleaned out the garage today.",
            "I had pasta for lunch.", "I walked past the old cinema on my way home.",
            "The train was late again today.", "I found an old photo album in a drawer.",
            "I spent the evening sorting emails.", "I tried a new crossword app."]


def statement_texts() -> list[tuple[str, str]]:
    """Told, not asked: other people's news, passing remarks, one-off moments."""
    pool = [(f"{who} {news.strip()}.", "Thanks for sharing that.")
            for who in _OTHERS for news in _OTHERS_NEWS]
    pool += [(r.strip().format(c=c), "Sounds interesting.") for r in _REMARKS for c in _CONCEPTS]
    pool += [(m, "Thanks for telling me.") for m in _MOMENTS]
    return pool


def distractor_texts(rng: random.Random) -> list[tuple[str, str]]:
    """Every generic exchange, shuffled: how-tos, explanations, small requests, chatter,
    and statements (`statement_texts`)."""
    pool = [(f"How do I {t}?", f"Here are a few simple steps to {t}.") for t in _TASKS]
    pool += [(f"Can you explain {c} simply?", f"In short, {c} comes down to a few ideas.")
             for c in _CONCEPTS]
    pool += [(f"Give me {k} about {s}.", f"Here is {k} about {s}.")
             for k in _KINDS for s in _SUBJECTS]
    pool += [(f"What's the difference between {a} and {b}?", f"{a} and {b} differ mostly in use.")
             for a, b in zip(_CONCEPTS, _CONCEPTS[1:] + _CONCEPTS[:1], strict=True)]
    pool += [(c, "Here's an idea to try.") for c in _CHATTER]
    pool += [(t.strip(), "It depends, but here are the usual guidelines.") for t in _TOPICAL]
    pairs = [(a, b) for a in _CONCEPTS for b in _CONCEPTS if a < b]
    pool += [(f"How are {a} and {b} related?", f"{a} and {b} connect in a few ways.")
             for a, b in rng.sample(pairs, 400)]
    pool += statement_texts()
    rng.shuffle(pool)
    return pool


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(rng: random.Random, low: int, high: int) -> str:
    return _stamp(NOW - timedelta(days=rng.uniform(low, high)))


def _content(text: str) -> set[str]:
    """Crude content stems (first four letters of words of 4+ letters, minus stop words)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w[:4] for w in words if len(w) >= 4 and w not in _STOP}


_STOP = set("""what which when where whose does have with that this these those from your
about there their they them then than into onto over under been being were will would
could should shall also just some more most much many very each every doing done make
made need needs soon these days still long""".split())  # noqa: SIM905


def _family_items(family: dict[str, Any], person: int, rng: random.Random
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The memories and the probe one family contributes for one person."""
    namespace = PEOPLE[person]
    kind = family["kind"]
    slots = family.get("slots", [{}])
    holder = 0 if kind == "isolation" else person
    memories = []
    if kind not in ("none",) and (kind != "isolation" or person == 0):
        values = slots[holder]
        times = _fact_times(kind, len(family["facts"]), rng)
        for index, (template, when) in enumerate(zip(family["facts"], times, strict=True)):
            memories.append({"id": f"{namespace}-{family['id']}-{index}", "namespace": namespace,
                             "query": template.format(**values),
                             "response": RESPONSES.get(family["area"], "Noted."),
                             "timestamp": when})
    probe_text = family["probes"][person % len(family["probes"])]
    probe = {"id": f"{namespace}-{family['id']}-probe", "family": family["id"], "kind": kind,
             "area": family["area"], "namespace": namespace,
             "query": probe_text.format(**slots[holder]) if kind != "none" else probe_text,
             "relevant": _relevant(kind, [m["id"] for m in memories])}
    if kind == "update":
        probe["newer"], probe["older"] = memories[1]["id"], memories[0]["id"]
    return memories, probe


def _fact_times(kind: str, count: int, rng: random.Random) -> list[str]:
    if kind == "update":  # the older fact a year or so back, its correction recent
        return [_ago(rng, 250, 500), _ago(rng, 5, 120)]
    return [_ago(rng, 3, 600) for _ in range(count)]


def _relevant(kind: str, ids: list[str]) -> list[str]:
    if kind in ("none",):
        return []
    if kind == "isolation":
        return ids  # filled for the holder only; empty for everyone else
    if kind == "update":
        return ids[1:]  # the newer memory is the answer
    return ids


def build() -> dict[str, Any]:
    """The whole set, deterministically from SEED; split by family with SPLIT_SEED."""
    rng = random.Random(SEED)
    memories: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []
    for family in FAMILIES:
        for person in range(len(PEOPLE)):
            found, probe = _family_items(family, person, rng)
            memories += found
            probe["kind"] = probe["kind"] if probe["relevant"] or probe["kind"] != "isolation" \
                else "isolation-none"
            probes.append(probe)
    memories += _distractors(rng)
    return {"about": __doc__.split("\n\n")[1].strip(), "now": _stamp(NOW),
            "split": split_families(), "memories": memories, "probes": probes}


def _distractors(rng: random.Random) -> list[dict[str, Any]]:
    pool = distractor_texts(rng)
    out = []
    for namespace in PEOPLE:
        picks = rng.sample(pool, DISTRACTORS_PER_PERSON)
        for index, (query, response) in enumerate(picks):
            out.append({"id": f"{namespace}-d{index:04d}", "namespace": namespace,
                        "query": query, "response": response, "timestamp": _ago(rng, 0, 730)})
    return out


def split_families() -> dict[str, list[str]]:
    """Families split once into halves, each kind split evenly, by SPLIT_SEED."""
    rng = random.Random(SPLIT_SEED)
    tuning, held_out = [], []
    for kind in sorted({f["kind"] for f in FAMILIES}):
        ids = sorted(f["id"] for f in FAMILIES if f["kind"] == kind)
        rng.shuffle(ids)
        half = (len(ids) + 1) // 2
        tuning += ids[:half]
        held_out += ids[half:]
    return {"tuning": sorted(tuning), "held_out": sorted(held_out)}


def check_wording(data: dict[str, Any]) -> list[str]:
    """Paraphrase and entity probes that share a content word with their memories."""
    text = {m["id"]: m["query"] for m in data["memories"]}
    problems = []
    for probe in data["probes"]:
        if probe["kind"] in ("paraphrase", "entity"):
            shared = set.union(*(_content(probe["query"]) & _content(text[i])
                                 for i in probe["relevant"]))
            if shared:
                problems.append(f"{probe['id']}: shares {sorted(shared)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Verify the file is up to date.")
    args = parser.parse_args(argv)
    data = build()
    problems = check_wording(data)
    for problem in problems:
        print(f"wording: {problem}", file=sys.stderr)
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print("up to date" if same else f"{OUT} differs from a fresh build")
        return 0 if same and not problems else 1
    OUT.write_text(text)
    kinds: dict[str, int] = {}
    for probe in data["probes"]:
        kinds[probe["kind"]] = kinds.get(probe["kind"], 0) + 1
    print(f"wrote {OUT}: {len(data['memories'])} memories, {len(data['probes'])} probes {kinds}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
