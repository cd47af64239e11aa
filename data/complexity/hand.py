"""Hand-written prompts for the complexity set: (label, category, text).

Written to cover what the templates do not: short but hard, long but easy, technical words in
easy requests, and everyday phrasing. Every third one is held out (see build.py).
"""

# ruff: noqa: E501  (data tables, kept one entry per line)
from __future__ import annotations

# fmt: off
HAND: list[tuple[str, str, str]] = [
    # -- small -------------------------------------------------------------------------------------------
    ("small", "fact", "What's 2+2?"),
    ("small", "fact", "who is the president of france"),
    ("small", "fact", "How tall is the Eiffel Tower?"),
    ("small", "fact", "What day comes after Thursday?"),
    ("small", "fact", "List the three primary colors."),
    ("small", "fact", "Is the sun a star? yes or no"),
    ("small", "fact", "how many continents are there"),
    ("small", "fact", "What's the freezing point of water in Fahrenheit?"),
    ("small", "fact", "Who discovered penicillin?"),
    ("small", "fact", "What is the largest ocean?"),
    ("small", "fact", "How many players are on a soccer team?"),
    ("small", "fact", "What's the speed of light?"),
    ("small", "fact", "Which animal is the fastest on land?"),
    ("small", "fact", "What is the square root of 81?"),
    ("small", "fact", "When is Halloween?"),
    ("small", "fact", "What is the main ingredient in guacamole?"),
    ("small", "fact", "Name a famous Beethoven symphony."),
    ("small", "fact", "What gas do plants absorb?"),
    ("small", "fact", "How many strings does a violin have?"),
    ("small", "fact", "What's the national animal of Scotland?"),
    ("small", "fact", "Who was the first person in space?"),
    ("small", "fact", "what does 'bonjour' mean"),
    ("small", "fact", "How do you pronounce quinoa?"),
    ("small", "fact", "What is 15% of 200?"),
    ("small", "fact", "Is tomato a fruit or a vegetable?"),
    ("small", "fact", "What's the hardest natural substance?"),
    ("small", "fact", "Which ocean is between Africa and Australia?"),
    ("small", "fact", "How many hours are in two days?"),
    ("small", "tech_fact", "What does CSS stand for?"),
    ("small", "tech_fact", "Which company makes the iPhone?"),
    ("small", "tech_fact", "What does git clone do?"),
    ("small", "tech_fact", "Is Python case sensitive?"),
    ("small", "tech_fact", "What's the latest stable version of Python you know of?"),
    ("small", "tech_fact", "What is the default branch name in new GitHub repos?"),
    ("small", "tech_fact", "What does the HTTP status 404 mean?"),
    ("small", "tech_fact", "What command lists files in a Linux directory?"),
    ("small", "tech_fact", "How many bits are in a byte?"),
    ("small", "tech_fact", "What does RAM stand for?"),
    ("small", "tech_fact", "Which key opens the command palette in VS Code?"),
    ("small", "tech_fact", "What is the file extension for a Word document?"),
    ("small", "tech_fact", "is JSON case sensitive"),
    ("small", "tech_fact", "what does npm stand for"),
    ("small", "tech_fact", "How do I check my Python version from the terminal?"),
    ("small", "tech_fact", "What does the 'ls -la' command show?"),
    ("small", "greeting", "hello!! how's it going"),
    ("small", "greeting", "thank you, that's all I needed"),
    ("small", "greeting", "Good night, talk tomorrow."),
    ("small", "greeting", "Can you speak Spanish?"),
    ("small", "greeting", "ok"),
    ("small", "greeting", "lol"),
    ("small", "greeting", "What can you do?"),
    ("small", "greeting", "Sorry, wrong chat."),
    ("small", "greeting", "Thanks, you saved my afternoon"),
    ("small", "format", "Capitalize: new york city"),
    ("small", "format", "Remove the duplicates: apple, pear, apple, fig, pear"),
    ("small", "format", "Turn 'first name' into snake_case."),
    ("small", "format", "Convert 3.5 hours to minutes."),
    ("small", "format", "Write the number 1,000,000 in words."),
    ("small", "format", "Add commas to this number: 12345678"),
    ("small", "format", "Make this a markdown table: name Anna age 31, name Tom age 27"),
    ("small", "format", "Convert 5 feet to inches."),
    ("small", "format", "Reformat this phone number as +1 (555) 123-4567 style: 5551234567"),
    ("small", "format", "Put quotes around each word: red green blue"),
    ("small", "format", "Count the words in: the quick brown fox jumps"),
    ("small", "format", "Change this to past tense: I walk to the store."),
    ("small", "classify", "Is 'I guess it's fine' positive, negative or neutral?"),
    ("small", "classify", "Which of these is a fruit: carrot, apple, potato?"),
    ("small", "classify", "Is this formal or informal: 'hey dude wassup'"),
    ("small", "classify", "Label as bug or feature request: 'Please add dark mode.'"),
    ("small", "classify", "Is 12 an even number?"),
    ("small", "classify", "Is this sentence in English? 'Das ist gut.'"),
    ("small", "classify", "Categorize 'Bought groceries at the market, $42' as food, transport, or rent."),
    ("small", "classify", "Does this text mention a price? 'The ticket costs twelve euros.'"),
    ("small", "extract", "What's the total on this receipt: coffee 3.50, bagel 2.25, total 5.75"),
    ("small", "extract", "Find the URL in: see https://example.com/docs for details"),
    ("small", "extract", "What time is the meeting? 'Let's meet at 4:30pm in room B.'"),
    ("small", "extract", "Which product is this complaint about? 'My X200 headphones stopped charging.'"),
    ("small", "extract", "Get the zip code from: 1600 Amphitheatre Pkwy, Mountain View, CA 94043"),
    ("small", "extract", "Extract the hashtags: Loving the sun #summer #beach #relax"),
    ("small", "extract", "Here are the minutes of yesterday's call. Attendees: Maria (chair), Joe, Priya and "
                         "Stefan. Maria opened the meeting at 10:05 and reviewed the actions from last week; "
                         "all were closed except the vendor contract, which Joe is still chasing. Priya "
                         "presented the Q3 hiring numbers. Stefan raised the office move, planned for "
                         "October. The meeting closed at 10:50. Who chaired the meeting?"),
    ("small", "extract", "Below is a product description. Premium stainless steel water bottle, 750 ml, keeps "
                         "drinks cold for 24 hours and hot for 12. Leak-proof lid, fits most cup holders, "
                         "dishwasher safe, available in six colours, BPA free, lifetime warranty. How many ml "
                         "does it hold?"),
    ("small", "extract", "Summarize in one line: The library will be closed on Monday for maintenance. Books "
                         "due that day can be returned on Tuesday without a fine. The online catalogue stays "
                         "available."),
    ("small", "translate", "Translate 'cat' to German."),
    ("small", "translate", "how do you say thank you in japanese"),
    ("small", "translate", "What's 'library' in Spanish?"),
    ("small", "translate", "Translate to French: The meeting starts at nine."),
    ("small", "rewrite", "Make this more polite: send me the file"),
    ("small", "rewrite", "Fix the grammar: he don't like apples"),
    ("small", "rewrite", "Shorten: 'at this point in time we are unable to proceed'"),
    ("small", "rewrite", "Write a one-line birthday wish for my colleague Sam."),
    ("small", "rewrite", "Give me a short subject line for an email about tomorrow's lunch."),
    ("small", "rewrite", "Suggest a name for a goldfish."),
    ("small", "rewrite", "Give me three words that rhyme with cat."),
    # -- large -------------------------------------------------------------------------------------------
    ("large", "math", "Prove that sqrt(3) is irrational."),
    ("large", "math", "What's 4821 * 397?"),
    ("large", "math", "Derive the formula for the sum of a geometric series."),
    ("large", "math", "Is 2^61 - 1 prime? How would you check?"),
    ("large", "math", "If I invest $500 a month at 6% annual return compounded monthly, how much will I have "
                      "after 25 years? Show the formula."),
    ("large", "math", "A bat and a ball cost $1.10 together; the bat costs $1 more than the ball. How much "
                      "is the ball? Explain carefully."),
    ("large", "math", "Find the eigenvalues of [[2, 1], [1, 2]] and explain what they mean geometrically."),
    ("large", "math", "How many trailing zeros does 100! have?"),
    ("large", "math", "What's the expected number of coin flips to get two heads in a row?"),
    ("large", "math", "Simplify (x^2 - 9)/(x^2 + 6x + 9) and state the domain."),
    ("large", "math", "Use Bayes' theorem: a test is 99% accurate and the disease affects 1 in 1000. I tested "
                      "positive; what's the chance I'm sick?"),
    ("large", "math", "Explain the Monty Hall problem and prove switching is better."),
    ("large", "math", "Why is 0.999... equal to 1? Give two different proofs."),
    ("large", "math", "Solve the recurrence T(n) = 2T(n/2) + n log n."),
    ("large", "code", "Implement an LRU cache."),
    ("large", "code", "Write a parser for arithmetic expressions with operator precedence."),
    ("large", "code", "Find the bug: for i in range(len(xs)): xs.remove(xs[i])"),
    ("large", "code", "My React app re-renders constantly when I type in an input. What could cause it and "
                      "how do I profile it?"),
    ("large", "code", "Write a Dockerfile for a Django app with a multi-stage build and a non-root user."),
    ("large", "code", "Why is my Python script using 8 GB of RAM when reading a 1 GB CSV with pandas? How do I "
                      "fix it?"),
    ("large", "code", "Explain the difference between a mutex and a semaphore with a code example of a "
                      "deadlock and how to avoid it."),
    ("large", "code", "Write a function to check whether a string of brackets is balanced."),
    ("large", "code", "Our Postgres query went from 50 ms to 9 s after a data import. Here's the EXPLAIN "
                      "ANALYZE output: Seq Scan on events (cost=0.00..184022.10 rows=8 width=72) Filter: "
                      "(user_id = 42). What happened and what should we do?"),
    ("large", "code", "Write a Kubernetes deployment with a horizontal pod autoscaler and a readiness probe for "
                      "a Go service."),
    ("large", "code", "How do I implement optimistic locking in a REST API?"),
    ("large", "code", "Write unit tests for a function that splits a bill among friends with tips and rounding."),
    ("large", "code", "Convert this recursive function to an iterative one: def f(n): return 1 if n < 2 else "
                      "f(n-1) + f(n-2)"),
    ("large", "code", "Make a tic-tac-toe game in JavaScript with an unbeatable AI."),
    ("large", "code", "What is wrong with double-checked locking in Java before version 5?"),
    ("large", "code", "write a python script to dedupe photos by perceptual hash"),
    ("large", "code", "Explain how a hash map handles collisions and implement one with open addressing."),
    ("large", "reasoning", "Why is the sky blue? Explain the physics in detail, including why the scattering "
                           "depends on wavelength."),
    ("large", "reasoning", "How would you detect fraud in credit card transactions? Outline an approach and its "
                           "pitfalls."),
    ("large", "reasoning", "Is it ethical for companies to use AI to screen job applicants? Argue both sides."),
    ("large", "reasoning", "Explain how the TLS 1.3 handshake achieves forward secrecy."),
    ("large", "reasoning", "My sourdough keeps coming out dense even though the starter bubbles. Diagnose "
                           "possible causes and a plan to test each."),
    ("large", "reasoning", "Three switches outside a room control three bulbs inside; you may enter once. How do "
                           "you find which switch controls which bulb?"),
    ("large", "reasoning", "What would happen to Earth's climate if the Moon disappeared? Think it through."),
    ("large", "reasoning", "Our conversion rate fell 15% after a redesign but traffic rose. How would you figure "
                           "out why?"),
    ("large", "reasoning", "Explain why correlation does not imply causation, with three real examples and how "
                           "each was resolved."),
    ("large", "reasoning", "Why do interest rate hikes reduce inflation? Walk through the transmission "
                           "mechanism."),
    ("large", "reasoning", "I'm choosing between renting and buying in a city where prices are 25x annual rent. "
                           "How should I think about it?"),
    ("large", "reasoning", "A farmer must cross a river with a wolf, a goat and a cabbage. Find the sequence of "
                           "crossings and explain why it works."),
    ("large", "analysis", "Summarize the main arguments for and against rent control and which evidence is "
                          "strongest."),
    ("large", "analysis", "Analyze the competitive landscape for electric scooters in European cities."),
    ("large", "analysis", "What are the risks of fine-tuning an LLM on customer support transcripts, and how "
                          "would you mitigate them?"),
    ("large", "analysis", "Review our pricing: free tier, $10 pro, $99 team. Churn is highest on pro. What "
                          "would you change and why?"),
    ("large", "analysis", "Compare the leadership styles of Lincoln and Churchill during wartime."),
    ("large", "analysis", "What are the second-order effects of self-driving trucks on small towns?"),
    ("large", "analysis", "Critique the methodology of a study that claims coffee extends life, based on "
                          "observational data from 10,000 people."),
    ("large", "design", "Design an event sourcing system for a bank account with snapshots and replays."),
    ("large", "design", "How would you build a search engine for 100 million product listings?"),
    ("large", "design", "Sketch the architecture of a collaborative text editor like Google Docs."),
    ("large", "design", "Design an on-call rotation and incident process for a team of six."),
    ("large", "design", "We need multi-region failover for our API with an RPO of 5 minutes. Propose a design."),
    ("large", "design", "design a rate limiter"),
    ("large", "writing", "Write a eulogy for my grandfather, who was a fisherman and loved jazz."),
    ("large", "writing", "Write a product launch announcement for our new budgeting app, for a blog, about 600 "
                         "words."),
    ("large", "writing", "Write a breakup letter that is kind but leaves no doubt."),
    ("large", "writing", "Write a limerick about a programmer who never sleeps, then a haiku on the same theme."),
    ("large", "writing", "Draft a reply to a customer who is furious that their wedding photos were lost."),
    ("large", "writing", "Write the opening chapter of a mystery novel set on a research ship in Antarctica."),
    ("large", "writing", "Rewrite the following terms of service clause in plain English without changing its "
                         "legal meaning: 'The Licensee shall indemnify and hold harmless the Licensor from any "
                         "and all claims arising out of the Licensee's use of the Software.'"),
    ("large", "writing", "Write a grant proposal summary for a community music program for teenagers."),
    ("large", "writing", "Write a satirical op-ed about meetings that could have been emails."),
    ("large", "writing", "write a toast for my sister's wedding, she's a marine biologist and her husband is a chef"),
    ("large", "planning", "Plan a 10-day trip to Japan for a family with two kids who love trains, on a "
                          "moderate budget."),
    ("large", "planning", "Create a study plan to learn linear algebra in 8 weeks for machine learning."),
    ("large", "planning", "How should I structure my first 90 days as a new engineering manager?"),
    ("large", "planning", "Lay out a go-to-market strategy for a B2B security product."),
    ("large", "planning", "Make a weekly meal plan for a vegetarian athlete, 3,000 kcal a day, with a shopping "
                          "list."),
]
# fmt: on
