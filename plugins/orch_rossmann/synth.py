"""A generator of Kaggle's Rossmann files (train.csv, store.csv, test.csv and the fast.ai side
tables store_states.csv, state_names.csv, weather.csv, googletrend.csv), deterministic by seed.

Kaggle's data cannot be had offline, so the embedded default is written by this generator with the
structure that makes entity embeddings worth learning:
- stores of four types and three assortments, spread over Rossmann's twelve German state codes;
- state effects that vary smoothly with the states' real latitude and longitude (base level,
  summer amplitude, promotion response), so a state embedding has a map to recover;
- day-of-week and month effects, a pre-Christmas rise, closed Sundays and public holidays;
- promotions (Promo) and Promo2 with its start and months, school holidays per state (staggered
  summer holidays, as German states stagger them), state holidays (public, Easter, Christmas);
- competitors opening near stores (sales drop after the opening, more when closer);
- a hidden 3-number profile per store that shapes its day-of-week pattern, promotion response and
  summer swing: low-rank store-by-time interactions, which an embedding of Store can learn and a
  tree on store ids has to split out store by store;
- multiplicative log-normal noise with a known sigma: the irreducible error is exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

# Rossmann's state codes (Kaggle's store_states.csv), names, and approximate centroids (lat, lon).
STATES = {
    "SH": ("SchleswigHolstein", 54.2, 9.8), "HH": ("Hamburg", 53.55, 10.0), "HB,NI": ("Niedersachsen", 52.8, 9.2),
    "NW": ("NordrheinWestfalen", 51.5, 7.5), "HE": ("Hessen", 50.6, 9.0), "RP": ("RheinlandPfalz", 49.9, 7.4),
    "BW": ("BadenWuerttemberg", 48.5, 9.0), "BY": ("Bayern", 48.9, 11.4), "TH": ("Thueringen", 50.9, 11.0),
    "SN": ("Sachsen", 51.0, 13.3), "ST": ("SachsenAnhalt", 51.9, 11.7), "BE": ("Berlin", 52.5, 13.4),
}
STORE_TYPES = {"a": 0.0, "b": 0.35, "c": 0.05, "d": 0.12}  # b: few, big stores (as in Kaggle's data)
ASSORTMENTS = {"a": 0.0, "b": 0.2, "c": 0.1}
DOW = {1: 0.18, 2: 0.05, 3: 0.0, 4: 0.02, 5: 0.08, 6: -0.05, 7: 0.0}  # 1 = Monday (Kaggle's DayOfWeek)
MONTH = {1: -0.08, 2: -0.06, 3: -0.02, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.03, 8: 0.0, 9: -0.03, 10: -0.02,
         11: 0.02, 12: 0.15}
PROMO_INTERVALS = ["Jan,Apr,Jul,Oct", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec"]
MONTH_ABBR = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec"]
TRAIN_START, TRAIN_END, TEST_END = date(2013, 1, 1), date(2015, 7, 31), date(2015, 9, 17)
# how a store's hidden profile z (3 numbers) maps to its day-of-week pattern (Mon..Sun) and to its
# promotion response and summer swing: fixed, so the structure is the same for every seed
PROFILE_DOW = 0.06 * np.array([[1, 0.5, 0, -0.5, -1, 0.5, 0], [0, 0, 0.5, 1, 0.5, -1, 0], [0.5, -1, 1, 0, -0.5, 0, 0]])
PROFILE_EFFECTS = 0.05 * np.array([[1.0, -0.5, 0.8], [-0.6, 1.0, 0.4]])


@dataclass(frozen=True)
class Spec:
    n_stores: int = 1115
    seed: int = 0
    noise_sigma: float = 0.10  # sd of log sales around their expectation


def _geo(code: str) -> tuple[float, float]:
    """Latitude and longitude scaled to about [-1, 1] over Germany."""
    _, lat, lon = STATES[code]
    return (lat - 51.3) / 2.8, (lon - 10.4) / 3.0


def state_effects(code: str) -> dict[str, float]:
    """Smooth functions of geography: what a state embedding can learn and a map can show."""
    y, x = _geo(code)
    return {"level": 0.15 * y - 0.20 * x + 0.05 * x * y,  # north-west richer, east lower
            "summer": 0.10 * y,  # the north (coast) sells more in summer
            "promo": 0.10 - 0.06 * x + 0.03 * y}  # promotions work better in the west


def _easter(year: int) -> date:
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def state_holidays(code: str, years: range) -> dict[date, str]:
    """Public ('a'), Easter ('b') and Christmas ('c') holidays, national and regional."""
    out: dict[date, str] = {}
    for year in years:
        easter = _easter(year)
        for d in (date(year, 1, 1), date(year, 5, 1), date(year, 10, 3), easter + timedelta(39),
                  easter + timedelta(50)):
            out[d] = "a"
        for d in (easter - timedelta(2), easter + timedelta(1)):
            out[d] = "b"
        out[date(year, 12, 25)] = out[date(year, 12, 26)] = "c"
        if code in ("BW", "BY", "ST"):
            out[date(year, 1, 6)] = "a"  # Epiphany
        if code in ("BW", "BY", "HE", "NW", "RP"):
            out[easter + timedelta(60)] = "a"  # Corpus Christi
        if code in ("SN", "ST", "TH"):
            out[date(year, 10, 31)] = "a"  # Reformation Day
    return out


def school_holidays(code: str, years: range) -> set[date]:
    """Easter, summer (six weeks, staggered by state), autumn and Christmas holidays."""
    order = list(STATES)
    shift = order.index(code) % 6
    days: set[date] = set()
    for year in years:
        easter = _easter(year)
        spans = [(easter - timedelta(8), 14), (date(year, 6, 22) + timedelta(7 * shift + (year % 3) * 7), 42),
                 (date(year, 10, 5) + timedelta(7 * (shift % 3)), 12), (date(year, 12, 22), 14)]
        for start, length in spans:
            days.update(start + timedelta(i) for i in range(length))
    return days


def write(folder: Path, spec: Spec = Spec()) -> dict:
    """Write the Rossmann files into ``folder``; returns the generator's metadata (also saved)."""
    rng = np.random.default_rng(spec.seed)
    folder.mkdir(parents=True, exist_ok=True)
    codes = list(STATES)
    stores = _stores(rng, spec.n_stores, codes)
    days = pd.date_range(TRAIN_START, TEST_END, freq="D")
    years = range(TRAIN_START.year, TEST_END.year + 1)
    holidays = {c: state_holidays(c, years) for c in codes}
    school = {c: school_holidays(c, years) for c in codes}
    promo_days = _promo_calendar(days, rng)
    frames = [_store_days(s, days, holidays[s["State"]], school[s["State"]], promo_days, rng, spec)
              for s in stores.to_dict("records")]
    full = pd.concat(frames, ignore_index=True)
    train = full[full["Date"] <= pd.Timestamp(TRAIN_END)].sort_values(["Date", "Store"], ascending=[False, True])
    test = full[full["Date"] > pd.Timestamp(TRAIN_END)].sort_values(["Date", "Store"], ascending=[False, True])
    columns = ["Store", "DayOfWeek", "Date", "Sales", "Customers", "Open", "Promo", "StateHoliday", "SchoolHoliday"]
    _csv(train[columns], folder / "train.csv")
    test = test.assign(Id=np.arange(1, len(test) + 1))
    _csv(test[["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday", "SchoolHoliday"]],
         folder / "test.csv")
    _csv(test[["Id", "Sales"]], folder / "test_solution.csv")  # what Kaggle kept secret: for scoring here
    _csv(stores.drop(columns=["State", "base", "z0", "z1", "z2"]), folder / "store.csv")
    _csv(stores[["Store", "State"]], folder / "store_states.csv")
    _csv(pd.DataFrame({"StateName": [STATES[c][0] for c in codes], "State": codes}), folder / "state_names.csv")
    _csv(_weather(days, codes, rng), folder / "weather.csv")
    _csv(_trends(days, codes, rng), folder / "googletrend.csv")
    meta = {"generator": "orch_rossmann.synth", "n_stores": spec.n_stores, "seed": spec.seed,
            "noise_sigma": spec.noise_sigma,
            # with y = m * exp(e), e ~ N(0, s^2), the best constant-factor prediction gives
            # RMSPE = sqrt(1 - exp(-s^2)): the irreducible error of this data
            "bayes_rmspe": float(np.sqrt(1 - np.exp(-spec.noise_sigma ** 2))),
            "state_effects": {c: state_effects(c) for c in codes}}
    (folder / "generator.json").write_text(json.dumps(meta, indent=2))
    return meta


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, date_format="%Y-%m-%d")


def _stores(rng, n: int, codes: list[str]) -> pd.DataFrame:
    weights = np.array([3, 2, 6, 10, 5, 4, 8, 9, 2, 3, 2, 3], dtype=float)  # store counts: NW, BY, BW lead
    state = rng.choice(codes, size=n, p=weights / weights.sum())
    stype = rng.choice(list(STORE_TYPES), size=n, p=[0.54, 0.02, 0.13, 0.31])
    assort = np.where(stype == "b", rng.choice(["a", "b", "c"], size=n, p=[0.3, 0.5, 0.2]),
                      rng.choice(["a", "c"], size=n, p=[0.53, 0.47]))
    distance = np.round(np.exp(rng.normal(7.6, 1.2, size=n)) / 10) * 10
    opens = rng.random(n) < 0.55  # a competitor opens during the data
    comp_date = [pd.Timestamp(TRAIN_START) + pd.Timedelta(days=int(d)) for d in rng.integers(60, 900, size=n)]
    old = rng.random(n) < 0.6
    promo2 = rng.random(n) < 0.5
    p2_start = [pd.Timestamp(2009, 1, 1) + pd.Timedelta(weeks=int(w)) for w in rng.integers(0, 340, size=n)]
    frame = pd.DataFrame({
        "Store": np.arange(1, n + 1), "StoreType": stype, "Assortment": assort,
        "CompetitionDistance": distance.astype(float),
        "CompetitionOpenSinceMonth": [d.month if o else (rng.integers(1, 13) if ol else np.nan)
                                      for d, o, ol in zip(comp_date, opens, old)],
        "CompetitionOpenSinceYear": [d.year if o else (rng.integers(1995, 2012) if ol else np.nan)
                                     for d, o, ol in zip(comp_date, opens, old)],
        "Promo2": promo2.astype(int),
        "Promo2SinceWeek": [d.isocalendar()[1] if p else np.nan for d, p in zip(p2_start, promo2)],
        "Promo2SinceYear": [d.year if p else np.nan for d, p in zip(p2_start, promo2)],
        "PromoInterval": [rng.choice(PROMO_INTERVALS) if p else "" for p in promo2],
        "State": state,
        "base": rng.normal(8.55, 0.25, size=n),  # the store's own level of log sales
    })
    profile = rng.normal(size=(n, 3))  # hidden: never written to the files
    for k in range(3):
        frame[f"z{k}"] = profile[:, k]
    frame.loc[frame["CompetitionDistance"] > 75_000, "CompetitionDistance"] = np.nan  # a few without
    return frame


def _promo_calendar(days: pd.DatetimeIndex, rng) -> set[pd.Timestamp]:
    """Rossmann ran promotions in chain-wide weeks (Monday to Friday), about every other week."""
    promo = set()
    for monday in days[days.dayofweek == 0]:
        if (monday.isocalendar()[1] % 2 == 0) ^ (rng.random() < 0.1):
            promo.update(monday + pd.Timedelta(days=i) for i in range(5))
    return promo


def _store_days(store: dict, days: pd.DatetimeIndex, holidays: dict, school: set, promo_days: set, rng,
                spec: Spec) -> pd.DataFrame:
    code = store["State"]
    eff = state_effects(code)
    n = len(days)
    dow = days.dayofweek.to_numpy() + 1
    month = days.month.to_numpy()
    state_hol = np.array([holidays.get(d.date(), "0") for d in days], dtype=object)
    school_hol = np.array([d.date() in school for d in days], dtype=int)
    promo = np.array([d in promo_days for d in days], dtype=int)
    open_ = ((dow != 7) & (state_hol == "0")).astype(int)
    if rng.random() < 0.03:  # a few stores close for a refurbishment (as in Kaggle's data)
        start = rng.integers(100, n - 200)
        open_[start:start + rng.integers(20, 150)] = 0
    summer = np.isin(month, [6, 7, 8]).astype(float)
    to_xmas = np.array([(pd.Timestamp(d.year, 12, 24) - d).days for d in days])
    xmas = np.where((to_xmas >= 0) & (to_xmas < 14), 0.25 * (1 - to_xmas / 14), 0.0)
    z = np.array([store["z0"], store["z1"], store["z2"]])
    log_sales = (store["base"] + (z @ PROFILE_DOW)[dow - 1] + (z @ PROFILE_EFFECTS[0]) * promo * (dow != 6)
                 + (z @ PROFILE_EFFECTS[1]) * summer
                 + STORE_TYPES[store["StoreType"]] + ASSORTMENTS[store["Assortment"]] + eff["level"]
                 + np.array([DOW[d] for d in dow]) + np.array([MONTH[m] for m in month]) + eff["summer"] * summer
                 + (0.20 + eff["promo"]) * promo * (dow != 6) + 0.04 * school_hol * (dow <= 5) + xmas)
    after_holiday = np.roll((state_hol != "0").astype(float), 1)
    log_sales += 0.12 * after_holiday * open_
    log_sales += _promo2(store, days)
    log_sales += _competition(store, days)
    log_sales += rng.normal(0, spec.noise_sigma, size=n)
    sales = np.where(open_ == 1, np.round(np.exp(log_sales)), 0).astype(int)
    basket = np.exp(rng.normal(2.2 + 0.1 * (store["Assortment"] != "a"), 0.05, size=n))
    customers = np.where(open_ == 1, np.round(sales / basket), 0).astype(int)
    return pd.DataFrame({"Store": store["Store"], "DayOfWeek": dow, "Date": days, "Sales": sales,
                         "Customers": customers, "Open": open_, "Promo": promo * open_,
                         "StateHoliday": state_hol, "SchoolHoliday": school_hol})


def _promo2(store: dict, days: pd.DatetimeIndex) -> np.ndarray:
    if not store["Promo2"]:
        return np.zeros(len(days))
    start = pd.Timestamp.fromisocalendar(int(store["Promo2SinceYear"]), int(store["Promo2SinceWeek"]), 1)
    months = {MONTH_ABBR.index(m) + 1 for m in store["PromoInterval"].split(",")}
    active = (days >= start) & np.isin(days.month, list(months))
    return 0.05 * active - 0.02 * (days >= start)  # a lift in its months, a small cost otherwise


def _competition(store: dict, days: pd.DatetimeIndex) -> np.ndarray:
    if np.isnan(store["CompetitionOpenSinceYear"]) or np.isnan(store["CompetitionDistance"]):
        return np.zeros(len(days))
    opened = pd.Timestamp(int(store["CompetitionOpenSinceYear"]), int(store["CompetitionOpenSinceMonth"]), 1)
    closeness = 1.0 / (1.0 + store["CompetitionDistance"] / 1000.0)
    return -0.25 * closeness * (days >= opened)


def _weather(days: pd.DatetimeIndex, codes: list[str], rng) -> pd.DataFrame:
    rows = []
    for code in codes:
        name, lat, lon = STATES[code]
        season = -np.cos(2 * np.pi * (days.dayofyear - 15) / 365.25)
        mean = 9.5 - 0.6 * (lat - 51) + 9.5 * season + rng.normal(0, 3, len(days))
        rows.append(pd.DataFrame({
            "file": name, "Date": days, "Max_TemperatureC": np.round(mean + 5).astype(int),
            "Mean_TemperatureC": np.round(mean).astype(int), "Min_TemperatureC": np.round(mean - 5).astype(int),
            "Precipitationmm": np.round(np.maximum(0, rng.gamma(0.6, 3, len(days)) - 0.5), 2),
            "Mean_Humidity": np.clip(np.round(78 - 8 * season + rng.normal(0, 6, len(days))), 30, 100).astype(int),
            "Events": np.where(rng.random(len(days)) < 0.35, "Rain", ""),
        }))
    return pd.concat(rows, ignore_index=True)


def _trends(days: pd.DatetimeIndex, codes: list[str], rng) -> pd.DataFrame:
    weeks = pd.date_range(days[0] - pd.Timedelta(days=days[0].dayofweek + 1), days[-1], freq="W-SAT")
    rows = []
    for code in codes:
        base = 60 + 10 * rng.standard_normal()
        trend = np.clip(np.round(base + 12 * np.sin(2 * np.pi * weeks.dayofyear / 365.25)
                                 + rng.normal(0, 4, len(weeks))), 0, 100).astype(int)
        week = [f"{(w - pd.Timedelta(days=6)).date()} - {w.date()}" for w in weeks]
        rows.append(pd.DataFrame({"file": f"Rossmann_DE_{code.split(',')[-1]}", "week": week, "trend": trend}))
    return pd.concat(rows, ignore_index=True)
