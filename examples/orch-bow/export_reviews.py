"""How src/orch_bow/corpus/reviews.txt.gz was made: 3,000 reviews sampled from the Women's Clothing
E-Commerce Reviews (CC0; orch ships them for ULMFiT), one per line in fastText's format,
``__label__yes`` or ``__label__no`` (did the reviewer recommend the item), then title and text.

It also prints the human baseline the task declares: how often the reviewers' own star rating
(>= 4 stars taken as "recommended") disagrees with their recommendation on these reviews.

    python examples/orch-bow/export_reviews.py      # from orch's repository
"""

import gzip
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1] / "plugins" / "orch_ulmfit" / "corpus" / "WomensClothingE-CommerceReviews.parquet.brotli"
TARGET = HERE / "src" / "orch_bow" / "corpus" / "reviews.txt.gz"

frame = pd.read_parquet(SOURCE).dropna(subset=["Review Text"]).sample(3000, random_state=0)
text = (frame["Title"].fillna("") + ". " + frame["Review Text"]).str.replace(r"\s+", " ", regex=True).str.strip(". ")
label = frame["Recommended IND"].map({1: "yes", 0: "no"})
with gzip.open(TARGET, "wt", encoding="utf-8") as f:
    f.writelines(f"__label__{lab} {t}\n" for lab, t in zip(label, text))
stars = (frame["Rating"] >= 4).map({True: "yes", False: "no"})
print(f"wrote {TARGET} ({len(frame)} reviews, {(label == 'no').mean():.1%} not recommended)")
print(f"stars (>= 4) against recommendation: {(stars != label).mean():.2%} disagree")
