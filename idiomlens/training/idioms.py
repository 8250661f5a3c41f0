"""The hand-written idiom table behind the demo corpus and the demo model's training text.

Each :class:`Idiom` has a surface form (as it appears in the sentences), its meaning
(a phrase that can replace the surface form in every figurative template, giving a
paraphrase), figurative templates and, where a literal reading is plausible, literal
templates. Templates contain ``{S}`` (a subject from :data:`SUBJECTS`) and ``{I}``
(where the surface form, or the meaning, goes). ``{I}`` never starts a sentence, so
the character span of the idiom is exact and its case is the surface form's.

This module is data written by the idiomlens authors; :mod:`idiomlens.training.demo_data`
turns it into sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Idiom", "IDIOMS", "SUBJECTS", "PREFIXES"]


@dataclass(frozen=True)
class Idiom:
    """One idiom with its meaning and sentence templates (``{S}`` subject, ``{I}`` idiom)."""

    surface: str
    meaning: str
    figurative: tuple[str, ...]
    literal: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for t in self.figurative + self.literal:
            if t.count("{I}") != 1 or t.startswith("{I}"):
                raise ValueError(f"template {t!r} of {self.surface!r} needs one non-initial {{I}}")


#: Subjects (people) for ``{S}``; lower case unless a name, capitalised at sentence start.
SUBJECTS: tuple[str, ...] = (
    "Tom", "Anna", "Maria", "David", "Lucy", "Jack", "Sarah", "Peter",
    "my brother", "my sister", "my father", "my grandmother", "the manager",
    "our neighbour", "the old farmer", "the new teacher", "the young doctor",
    "the coach", "the mayor", "the student", "she", "he", "my uncle", "the captain",
)  # fmt: skip

#: Sentence openers; a subject that follows one keeps its lower case.
PREFIXES: tuple[str, ...] = (
    "", "Yesterday, ", "Last week, ", "In the end, ", "Of course, ", "After the meeting, ",
    "Honestly, ", "Everyone knows that ", "I heard that ", "To our surprise, ",
)  # fmt: skip

# fmt: off
IDIOMS: tuple[Idiom, ...] = (
    Idiom(
        "spilled the beans", "revealed the secret",
        ("{S} {I} about the surprise party.", "{S} {I} before the wedding.",
         "{S} finally {I} to the police.", "{S} {I} and everyone was shocked.",
         "{S} {I} about the new job."),
        ("{S} {I} all over the kitchen floor.", "{S} tripped and {I} on the carpet.",
         "{S} {I} from the tin into the pot."),
    ),
    Idiom(
        "kicked the bucket", "died",
        ("{S} said the old dog {I} last winter.", "{S} heard that the king {I} at ninety.",
         "{S} cried when the parrot {I} in May.", "{S} learned the poet {I} in Paris.",
         "{S} said the rich uncle {I} without a will."),
        ("{S} {I} across the yard in anger.", "{S} {I} and the water splashed out.",
         "{S} accidentally {I} near the well."),
    ),
    Idiom(
        "broke the ice", "eased the tension",
        ("{S} {I} with a funny story.", "{S} {I} at the first meeting.",
         "{S} {I} by offering everyone tea.", "{S} {I} with a joke about the weather.",
         "{S} {I} at the awkward dinner."),
        ("{S} {I} on the frozen pond.", "{S} {I} with a heavy hammer.",
         "{S} {I} to catch a fish."),
    ),
    Idiom(
        "hit the nail on the head", "described it exactly",
        ("{S} {I} with that answer.", "{S} {I} in the final report.",
         "{S} really {I} during the debate.", "{S} {I} when talking about the problem.",
         "{S} {I} in one short sentence."),
        ("{S} {I} with a small hammer.", "{S} {I} and the picture stayed up.",
         "{S} carefully {I} on the first try."),
    ),
    Idiom(
        "let the cat out of the bag", "revealed the secret",
        ("{S} {I} about the gift.", "{S} {I} at dinner.",
         "{S} {I} before the announcement.", "{S} accidentally {I} on the phone.",
         "{S} {I} and ruined the surprise."),
        ("{S} {I} at the vet.", "{S} {I} and it ran under the bed.",
         "{S} gently {I} in the garden."),
    ),
    Idiom(
        "beat around the bush", "avoided the main topic",
        ("{S} {I} instead of answering.", "{S} {I} for ten minutes.",
         "{S} always {I} when asked about money.", "{S} {I} during the interview.",
         "{S} {I} until the boss got angry."),
        ("{S} {I} with a stick to scare the birds.", "{S} {I} looking for the ball.",
         "{S} {I} to find the lost keys."),
    ),
    Idiom(
        "bit the bullet", "accepted the hard task",
        ("{S} {I} and paid the bill.", "{S} {I} and called the bank.",
         "{S} finally {I} and started the diet.", "{S} {I} and went to the dentist.",
         "{S} {I} and told the truth."),
    ),
    Idiom(
        "burned the midnight oil", "worked late into the night",
        ("{S} {I} before the exam.", "{S} {I} to finish the project.",
         "{S} {I} all through the spring.", "{S} {I} to write the book.",
         "{S} often {I} at the office."),
    ),
    Idiom(
        "threw in the towel", "gave up",
        ("{S} {I} after the third defeat.", "{S} {I} on the old car.",
         "{S} {I} and sold the shop.", "{S} never {I} during the hard years.",
         "{S} {I} halfway through the race."),
        ("{S} {I} with the dirty laundry.", "{S} {I} and closed the washing machine.",
         "{S} {I} after the swim."),
    ),
    Idiom(
        "rocked the boat", "caused trouble",
        ("{S} {I} at the board meeting.", "{S} {I} by asking hard questions.",
         "{S} did not want to say anything that {I}.", "{S} {I} with the new rules.",
         "{S} {I} in the small village."),
        ("{S} {I} on the calm lake.", "{S} {I} and the fish swam away.",
         "{S} {I} while standing up."),
    ),
    Idiom(
        "missed the boat", "lost the chance",
        ("{S} {I} on the cheap houses.", "{S} {I} with that investment.",
         "{S} {I} by waiting too long.", "{S} {I} on the new market.",
         "{S} {I} when the tickets sold out."),
        ("{S} {I} to the island.", "{S} ran to the harbour but {I}.",
         "{S} {I} and waited for the next ferry."),
    ),
    Idiom(
        "barked up the wrong tree", "blamed the wrong person",
        ("{S} {I} with those accusations.", "{S} {I} when blaming the cook.",
         "{S} {I} about the missing money.", "{S} {I} in the police report.",
         "{S} {I} and apologised later."),
        ("{S} said the dog {I} all morning.", "{S} laughed because the puppy {I}.",
         "{S} saw that the hound {I} while the cat slept."),
    ),
    Idiom(
        "cut corners", "saved effort carelessly",
        ("{S} {I} on the new bridge.", "{S} {I} to save money.",
         "{S} never {I} at work.", "{S} {I} and the roof leaked.",
         "{S} {I} when building the shed."),
        ("{S} {I} off the paper with scissors.", "{S} {I} from the cardboard box.",
         "{S} {I} of the carpet to fit the room."),
    ),
    Idiom(
        "hit the road", "left",
        ("{S} {I} early in the morning.", "{S} {I} after breakfast.",
         "{S} {I} before the storm.", "{S} packed the car and {I}.",
         "{S} {I} at dawn."),
    ),
    Idiom(
        "hit the sack", "went to bed",
        ("{S} {I} at ten o'clock.", "{S} {I} after the long trip.",
         "{S} {I} early last night.", "{S} was tired and {I}.",
         "{S} {I} right after dinner."),
        ("{S} {I} of flour with a fist.", "{S} {I} in the boxing gym.",
         "{S} {I} of potatoes by mistake."),
    ),
    Idiom(
        "pulled his leg", "joked with him",
        ("{S} {I} about the lottery ticket.", "{S} {I} all evening.",
         "{S} just {I} about the ghost.", "{S} {I} and he believed it.",
         "{S} {I} about the broken car."),
        ("{S} {I} to free him from the mud.", "{S} {I} gently during the massage.",
         "{S} {I} out of the hole."),
    ),
    Idiom(
        "got cold feet", "became too nervous",
        ("{S} {I} before the wedding.", "{S} {I} and cancelled the trip.",
         "{S} {I} at the last minute.", "{S} {I} about the new job.",
         "{S} {I} and stayed at home."),
        ("{S} {I} in the snow.", "{S} {I} walking on the ice.",
         "{S} {I} in the cold river."),
    ),
    Idiom(
        "turned a blind eye", "ignored it on purpose",
        ("{S} {I} to the noise.", "{S} {I} to the cheating.",
         "{S} {I} to the broken rules.", "{S} {I} when the kids came home late.",
         "{S} {I} to the mess in the kitchen."),
    ),
    Idiom(
        "jumped on the bandwagon", "followed the trend",
        ("{S} {I} and bought the new phone.", "{S} {I} after the team won.",
         "{S} quickly {I} with the new diet.", "{S} {I} like everyone else.",
         "{S} {I} at the last moment."),
        ("{S} {I} during the parade.", "{S} {I} as it rolled past.",
         "{S} {I} with the musicians."),
    ),
    Idiom(
        "went the extra mile", "made a special effort",
        ("{S} {I} for the customers.", "{S} {I} to help the new student.",
         "{S} always {I} at work.", "{S} {I} to finish the task.",
         "{S} {I} for the team."),
    ),
    Idiom(
        "called it a day", "stopped working",
        ("{S} {I} at five o'clock.", "{S} {I} after the long shift.",
         "{S} finally {I} and went home.", "{S} {I} early on Friday.",
         "{S} {I} when the light was gone."),
    ),
    Idiom(
        "saw the light", "finally understood",
        ("{S} {I} after the long talk.", "{S} {I} and changed the plan.",
         "{S} finally {I} about the money.", "{S} {I} and said sorry.",
         "{S} {I} during the lecture."),
        ("{S} {I} at the end of the tunnel.", "{S} {I} in the window.",
         "{S} {I} from the old lighthouse."),
    ),
    Idiom(
        "let off steam", "released the anger",
        ("{S} {I} at the gym.", "{S} {I} after the exam.",
         "{S} {I} by running in the park.", "{S} {I} with a long walk.",
         "{S} {I} by shouting at the wall."),
        ("{S} said the old engine {I} at the station.", "{S} watched the kettle that {I}.",
         "{S} saw that the machine {I} every hour."),
    ),
    Idiom(
        "hit the books", "studied hard",
        ("{S} {I} before the final exam.", "{S} {I} all weekend.",
         "{S} {I} after dinner.", "{S} {I} to pass the test.",
         "{S} {I} in the library."),
    ),
    Idiom(
        "a piece of cake", "very easy",
        ("For {S}, the exam was {I}.", "{S} said the test was {I}.",
         "{S} found the job {I}.", "{S} thought the puzzle was {I}.",
         "{S} said fixing the sink was {I}."),
        ("{S} ate {I} after dinner.", "{S} cut {I} for the guest.",
         "{S} bought {I} at the bakery."),
    ),
    Idiom(
        "once in a blue moon", "very rarely",
        ("{S} visits the city {I}.", "{S} cooks dinner {I}.",
         "{S} goes to the cinema {I}.", "{S} calls home {I}.",
         "{S} cleans the car {I}."),
    ),
    Idiom(
        "under the weather", "slightly ill",
        ("{S} felt {I} on Monday.", "{S} stayed home {I}.",
         "{S} was {I} after the trip.", "{S} looked {I} at breakfast.",
         "{S} seemed {I} all week."),
    ),
    Idiom(
        "the last straw", "the final problem",
        ("For {S}, the late bus was {I}.", "{S} said the rude email was {I}.",
         "{S} felt the new tax was {I}.", "{S} knew the broken promise was {I}.",
         "{S} called the loud party {I}."),
        ("{S} took {I} from the box.", "{S} used {I} for the juice.",
         "{S} gave {I} to the child."),
    ),
    Idiom(
        "the tip of the iceberg", "a small part of the problem",
        ("{S} said the scandal was {I}.", "{S} knew the debt was {I}.",
         "{S} warned the leak was {I}.", "{S} thought the complaints were {I}.",
         "{S} feared the losses were {I}."),
        ("{S} saw {I} from the ship.", "{S} photographed {I} in the sea.",
         "{S} pointed at {I} near the coast."),
    ),
    Idiom(
        "in hot water", "in trouble",
        ("{S} was {I} with the boss.", "{S} got {I} for being late.",
         "{S} ended up {I} after the lie.", "{S} landed {I} with the police.",
         "{S} was {I} at school."),
        ("{S} washed the dishes {I}.", "{S} cooked the eggs {I}.",
         "{S} soaked the towels {I}."),
    ),
    Idiom(
        "on thin ice", "in a risky position",
        ("{S} is {I} with the teacher.", "{S} was {I} after the mistake.",
         "{S} knew the team was {I}.", "{S} felt {I} at work.",
         "{S} said the company was {I}."),
        ("{S} skated {I} on the lake.", "{S} walked {I} near the shore.",
         "{S} slipped {I} in the park."),
    ),
    Idiom(
        "the elephant in the room", "the obvious problem",
        ("{S} finally mentioned {I}.", "{S} ignored {I} at dinner.",
         "{S} talked about {I} at the meeting.", "{S} said the debt was {I}.",
         "{S} pointed out {I} during the talk."),
        ("{S} fed {I} at the circus.", "{S} photographed {I} at the zoo.",
         "{S} washed {I} behind the tent."),
    ),
    Idiom(
        "cost an arm and a leg", "was very expensive",
        ("{S} said the new car {I}.", "{S} knew the repair {I}.",
         "{S} said the wedding {I}.", "{S} complained the trip {I}.",
         "{S} admitted the house {I}."),
    ),
    Idiom(
        "in the same boat", "in the same situation",
        ("{S} was {I} as the other workers.", "{S} knew they were all {I}.",
         "{S} felt {I} as the students.", "{S} said everyone was {I}.",
         "{S} realised we were {I}."),
        ("{S} sat {I} as the fisherman.", "{S} crossed the river {I}.",
         "{S} rowed {I} with the guide."),
    ),
)
# fmt: on
