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
COMMON = _words("""home street corner country world city garden kitchen morning evening night afternoon week
    month year hour minute moment today yesterday tomorrow spring summer autumn winter season noon midnight
    player singer writer nurse cook guard pilot judge clerk captain officer worker guest host owner visitor
    traveler uncle aunt brother sister mother father son daughter baby people group class lesson test prize
    party dinner breakfast lunch meal picnic walk trip journey holiday visit race match show film picture
    photo color shape size number line list book corner edge side top bottom
    middle end start half piece part kind sort way place thing time life work job business plan news
    voice song music noise silence smell taste touch dream memory mind heart head hand face eye ear foot
    arm leg back hair skin nose mouth tooth heat ice rock sand grass leaf branch root seed flower""")
NOUNS = _words(" ".join(NOUNS + COMMON))
FUNCTION = _words("""who which that what where when why how there here this these those some many every each all both other
    another more most very too also just only even still not no yes perhaps maybe really almost quite""")
ADJECTIVES = _words("""old new young small large big little long short tall high low red blue green
    yellow white black brown dark bright quiet loud warm cold hot cool wet dry clean dirty heavy light
    happy sad angry calm busy lazy kind brave clever strange famous simple plain rich poor empty full
    early late quick slow soft hard sharp gentle wild tired hungry sleepy proud careful gray golden
    narrow wide deep thin thick sweet bitter fresh""")
ADVERBS = _words("""slowly quickly carefully gladly softly loudly suddenly often never always again
    together alone outside inside early late happily sadly calmly easily barely nearly already soon""")


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``"walk walked, run ran"`` as ``(("walk", "walked"), ("run", "ran"))``."""
    return tuple((pair.split()[0], pair.split()[1]) for pair in text.split(","))


# (base, past) pairs: verbs without an object, verbs with one.
INTRANSITIVE = _pairs("""walk walked, run ran, sleep slept, laugh laughed, cry cried, wait waited, sing sang,
    dance danced, smile smiled, rest rested, work worked, play played, travel traveled,
    arrive arrived, fall fell, stay stayed, return returned, listen listened, shout shouted,
    jump jumped, swim swam, climb climbed, sit sat, stand stood, look looked, think thought,
    agree agreed, begin began, stop stopped, leave left, come came, go went, hurry hurried,
    grow grew, shine shone, wonder wondered, nod nodded, sigh sighed, knock knocked,
    whistle whistled, learn learned""")
TRANSITIVE = _pairs("""see saw, find found, open opened, close closed, carry carried, break broke, fix fixed,
    paint painted, clean cleaned, cook cooked, buy bought, lose lost, keep kept, hold held,
    move moved, wash washed, build built, draw drew, read read, watch watched, visit visited,
    follow followed, call called, help helped, count counted, check checked, choose chose,
    need needed, like liked, remember remembered, forget forgot, hide hid, fill filled,
    cover covered, pull pulled, push pushed, catch caught, pass passed, show showed, sell sold,
    write wrote, send sent, bring brought, take took, make made, get got, meet met, teach taught,
    answer answered, ask asked, love loved, hate hated, win won, pick picked, drop dropped,
    lift lifted, hear heard, plant planted, feed fed, mend mended, sort sorted, pack packed,
    print printed, measure measured, study studied, join joined""")
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


__all__ = ["ADJECTIVES", "ADVERBS", "COMMON", "CONNECTORS", "FUNCTION", "INTRANSITIVE", "INTROS", "NAMES", "NOUNS", "OBJECTS",
           "PLACES", "PREPOSITIONS", "TRANSFER", "TRANSITIVE", "YEAR_FRAMES", "YEAR_SUBJECTS"]
