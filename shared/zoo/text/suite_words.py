"""Word lists of the suite's generated corpus (:mod:`shared.zoo.text.suite_corpus`).

Ordinary English words in groups a small grammar can combine. Verbs are ``(base, past)`` pairs.
The verbs that end the held-out IOI templates (slipped, mailed, offered, lent, handed, left, wrote,
whispered, passed, showed, sold) are deliberately absent from the transfer phrases the stories use.
"""
from __future__ import annotations

from shared.tasks.heldout import GT_NOUNS, IOI_NAMES, IOI_OBJECTS, IOI_PLACES


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text.split()))


NAMES = _words(" ".join(IOI_NAMES) + """ Tom Ana Bob Eve Max Lia Sam Ivy Leo Mia Ned Zoe Kai Ada Ray Uma Jon
    Gus Ida Amy Tim Joe Sue Ann Ted Liz Ron Meg Jim Kim Pat Roy Fay Lee Eli Noah Ella Ruby Jack Mike Lisa Nick
    Rosa Karl Otto Vera Ivan Omar Sara Tina Walt Dora Finn Glen Iris Jude Lena Nora Owen Rita Seth Tess""")
PLACES = _words(" ".join(IOI_PLACES) + """ park shop forest village castle bridge tower lake hill field
    cafe hotel stadium zoo island mill barn square port temple valley cave city town camp""")
OBJECTS = _words(" ".join(IOI_OBJECTS) + """ bag bottle card clock coat drum flower gift glass hammer jar
    kite knife mirror necklace note orange pencil phone plate radio rope scarf shoe spoon stone toy vase watch
    wallet bell blanket bowl brush candle chair comb""")
NOUNS = _words(" ".join(OBJECTS) + " " + " ".join(PLACES) + " " + " ".join(GT_NOUNS) + """ dog cat horse bird
    fish cow sheep goat mouse fox wolf bear owl child man woman boy girl teacher doctor farmer king queen
    soldier sailor baker painter driver student friend neighbor stranger crowd family team army council
    tree rain snow wind sun moon star cloud storm sea wave road path door window wall roof floor table bed
    garden gate fence wheel cart boat ship train bus car engine machine paper story song game plan idea
    question answer problem reason name word voice sound light fire water bread milk cheese soup meat
    fruit rice salt sugar tea coffee wine money price market letter message house room hall stairs""")
ADJECTIVES = _words("""old new young small large big little long short tall high low red blue green
    yellow white black brown dark bright quiet loud warm cold hot cool wet dry clean dirty heavy light
    happy sad angry calm busy lazy kind brave clever strange famous simple plain rich poor empty full
    early late quick slow soft hard sharp gentle wild tired hungry sleepy proud careful gray golden
    narrow wide deep thin thick sweet bitter fresh""")
ADVERBS = _words("""slowly quickly carefully gladly softly loudly suddenly often never always again
    together alone outside inside early late happily sadly calmly easily barely nearly already soon""")
# (base, past) pairs: verbs without an object, verbs with one.
INTRANSITIVE = (("walk", "walked"), ("run", "ran"), ("sleep", "slept"), ("laugh", "laughed"), ("cry", "cried"),
                ("wait", "waited"), ("sing", "sang"), ("dance", "danced"), ("smile", "smiled"), ("rest", "rested"),
                ("work", "worked"), ("play", "played"), ("travel", "traveled"), ("arrive", "arrived"),
                ("fall", "fell"), ("stay", "stayed"), ("return", "returned"), ("listen", "listened"),
                ("shout", "shouted"), ("jump", "jumped"), ("swim", "swam"), ("climb", "climbed"),
                ("sit", "sat"), ("stand", "stood"), ("look", "looked"), ("think", "thought"), ("agree", "agreed"))
TRANSITIVE = (("see", "saw"), ("find", "found"), ("open", "opened"), ("close", "closed"), ("carry", "carried"),
              ("break", "broke"), ("fix", "fixed"), ("paint", "painted"), ("clean", "cleaned"), ("cook", "cooked"),
              ("buy", "bought"), ("lose", "lost"), ("keep", "kept"), ("hold", "held"), ("move", "moved"),
              ("wash", "washed"), ("build", "built"), ("draw", "drew"), ("read", "read"), ("watch", "watched"),
              ("visit", "visited"), ("follow", "followed"), ("call", "called"), ("help", "helped"),
              ("count", "counted"), ("check", "checked"), ("choose", "chose"), ("need", "needed"),
              ("like", "liked"), ("remember", "remembered"), ("forget", "forgot"), ("hide", "hid"),
              ("fill", "filled"), ("cover", "covered"), ("pull", "pulled"), ("push", "pushed"), ("catch", "caught"))
PREPOSITIONS = _words("in on at near under over behind beside inside outside across through into from with by")
CONNECTORS = ("Then", "Later", "After that,", "The next day,", "In the end,", "Soon", "At noon,", "That night,",
              "Afterwards,", "Before long,", "Finally,", "By evening,", "Next,", "A week later,", "Still,")
# IOI training: "{S} <phrase> {IO}" -- the recipient right after the phrase. {O} is an object.
TRANSFER = ("gave the {O} to", "gave a {O} to", "brought the {O} to", "brought a {O} to", "sent the {O} to",
            "sent a {O} to", "threw the {O} to", "returned the {O} to", "read a story to", "sang a song to",
            "told a joke to", "explained the plan to", "delivered the {O} to", "carried the {O} to",
            "took the {O} to", "said goodbye to", "spoke to", "waved to", "smiled at", "talked to",
            "kicked the {O} to", "threw a {O} at", "pointed the {O} at", "bought a {O} for", "made a {O} for",
            "fetched the {O} for", "baked a cake for", "cooked dinner for", "opened the door for",
            "found a {O} for", "kept the {O} for", "gave", "brought", "sent", "told", "asked", "thanked",
            "called", "helped", "visited", "followed", "introduced the {O} to", "explained everything to")
INTROS = ("{A} and {B} went to the {P}.", "{A} met {B} at the {P}.", "One day, {A} and {B} visited the {P}.",
          "{A} was at the {P} with {B}.", "{A} and {B} were friends.", "{A} walked to the {P} with {B}.",
          "At the {P}, {A} saw {B}.", "{A} and {B} lived near the {P}.", "{A} invited {B} to the {P}.",
          "{A} and {B} worked at the {P}.", "In the morning {A} and {B} arrived at the {P}.",
          "{A} called {B} from the {P}.", "{A}, {B} and their dog stayed at the {P}.",
          "The {P} was busy when {A} and {B} came in.", "{A} waited for {B} outside the {P}.",
          "{A} and {B} cleaned the {P} together.", "{A} ran into {B} by the {P}.")
YEAR_FRAMES = ("from {Y1} to {Y2}", "between {Y1} and {Y2}", "from the year {Y1} to the year {Y2}",
               "lasted from {Y1} to {Y2}", "began in {Y1} and ended in {Y2}", "ran from {Y1} to {Y2}",
               "in {Y1} and again in {Y2}", "opened in {Y1} and closed in {Y2}", "({Y1}-{Y2})",
               "started in {Y1}, finished in {Y2}", "was built in {Y1} and rebuilt in {Y2}",
               "from {Y1} until {Y2}", "{Y1} to {Y2}", "during the years {Y1} to {Y2}", "of {Y1}-{Y2}")
YEAR_SUBJECTS = GT_NOUNS + ("bridge", "church", "tower", "school", "market", "railway", "canal", "palace",
                            "treaty", "festival", "colony", "company", "dynasty", "republic", "empire")


__all__ = ["ADJECTIVES", "ADVERBS", "CONNECTORS", "INTRANSITIVE", "INTROS", "NAMES", "NOUNS", "OBJECTS",
           "PLACES", "PREPOSITIONS", "TRANSFER", "TRANSITIVE", "YEAR_FRAMES", "YEAR_SUBJECTS"]
