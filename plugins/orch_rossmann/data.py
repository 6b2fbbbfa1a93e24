"""Kaggle's Rossmann files -> one table per split, prepared as in the fast.ai lesson: joins, date
parts, elapsed-time features, competition and Promo2 durations, closed days and zero sales dropped,
log-sales target. Every file and column is checked, with errors that name them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator import UserError

REQUIRED = {
    "train.csv": ["Store", "DayOfWeek", "Date", "Sales", "Open", "Promo", "StateHoliday", "SchoolHoliday"],
    "store.csv": ["Store", "StoreType", "Assortment", "CompetitionDistance", "CompetitionOpenSinceMonth",
                  "CompetitionOpenSinceYear", "Promo2", "Promo2SinceWeek", "Promo2SinceYear", "PromoInterval"],
    "test.csv": ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday", "SchoolHoliday"],
}
NUMERIC = {"Store", "DayOfWeek", "Sales", "Open", "Promo", "SchoolHoliday", "Id", "CompetitionDistance",
           "CompetitionOpenSinceMonth", "CompetitionOpenSinceYear", "Promo2", "Promo2SinceWeek", "Promo2SinceYear"}
ELAPSED = ("Promo", "StateHoliday", "SchoolHoliday")
ELAPSED_CAP = 60  # days: the elapsed features count at most this far back or ahead
SIDE_TABLES = ("store", "store_states", "state_names", "weather", "googletrend")
ROWS = [c for c in REQUIRED["test.csv"] if c != "Id"]  # what a row to forecast needs (Id optional)


def read(folder: Path, name: str, required: list[str] | None = None) -> pd.DataFrame:
    path = folder / name
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot parse: {' '.join(str(exc).split())[:160]}") from None
    missing = [c for c in (required or []) if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in set(required or []) & NUMERIC:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna() & (frame[column].astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"{path}: column {column}: expected numbers, got {frame[column].iloc[row]!r} "
                            f"at data row {row + 1}")
        frame[column] = values
    if "Date" in frame.columns:
        dates = pd.to_datetime(frame["Date"], format="%Y-%m-%d", errors="coerce")
        if dates.isna().any():
            row = int(np.flatnonzero(dates.isna().to_numpy())[0])
            raise UserError(f"{path}: column Date: expected YYYY-MM-DD, got {frame['Date'].iloc[row]!r} "
                            f"at data row {row + 1}")
        frame["Date"] = dates
    return frame


def load(folder: Path) -> dict[str, pd.DataFrame]:
    """The Kaggle files, plus the fast.ai side tables when present."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: Rossmann folder not found")
    tables = {name.removesuffix(".csv"): read(folder, name, cols) for name, cols in REQUIRED.items()}
    for name in ("store_states.csv", "state_names.csv", "weather.csv", "googletrend.csv"):
        if (folder / name).exists():
            tables[name.removesuffix(".csv")] = read(folder, name)
    known = set(tables["store"]["Store"])
    for split in ("train", "test"):
        unknown = sorted(set(tables[split]["Store"]) - known)
        if unknown:
            raise UserError(f"{folder / (split + '.csv')}: Store {int(unknown[0])} is not in store.csv "
                            f"({len(unknown)} unknown store id(s))")
    return tables


def _join(frame: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    out = frame.merge(tables["store"], on="Store", how="left")
    if "store_states" in tables:
        out = out.merge(tables["store_states"][["Store", "State"]], on="Store", how="left")
        if "state_names" in tables:
            out = out.merge(tables["state_names"], on="State", how="left")
        if "weather" in tables and "StateName" in out:
            weather = tables["weather"].rename(columns={"file": "StateName"})
            keep = [c for c in ("StateName", "Date", "Max_TemperatureC", "Mean_TemperatureC", "Min_TemperatureC",
                                "Precipitationmm", "Mean_Humidity", "Events") if c in weather]
            out = out.merge(weather[keep], on=["StateName", "Date"], how="left")
        if "googletrend" in tables:
            trend = tables["googletrend"].copy()
            trend["Date"] = pd.to_datetime(trend["week"].str.split(" - ").str[0], errors="coerce")
            # Kaggle names Niedersachsen's trend file NI where store_states.csv says HB,NI (as in the lesson)
            trend["State"] = trend["file"].str.split("_").str[-1].replace({"NI": "HB,NI"})
            trend = trend.dropna(subset=["Date"])[["State", "Date", "trend"]]
            out["WeekStart"] = out["Date"] - pd.to_timedelta((out["Date"].dt.dayofweek + 1) % 7, unit="D")
            out = out.merge(trend.rename(columns={"Date": "WeekStart"}), on=["State", "WeekStart"],
                            how="left").drop(columns=["WeekStart"])
    return out


def _date_parts(out: pd.DataFrame) -> pd.DataFrame:
    d = out["Date"].dt
    return out.assign(Year=d.year, Month=d.month, Week=d.isocalendar().week.astype(int), Day=d.day,
                      Dayofyear=d.dayofyear, Is_month_start=d.is_month_start.astype(int),
                      Is_month_end=d.is_month_end.astype(int))


def _elapsed(out: pd.DataFrame) -> pd.DataFrame:
    """Days since the last and until the next Promo / state holiday / school holiday, per store."""
    out = out.sort_values(["Store", "Date"]).reset_index(drop=True)
    day = (out["Date"] - out["Date"].min()).dt.days.to_numpy()
    for name in ELAPSED:
        flag = (out[name].astype(str) != "0").to_numpy() if name == "StateHoliday" else out[name].to_numpy() > 0
        event_day = pd.Series(np.where(flag, day, np.nan))
        groups = out["Store"]
        last = event_day.groupby(groups).ffill()
        nxt = event_day.groupby(groups).bfill()
        cap = float(ELAPSED_CAP)
        out[f"After{name}"] = np.clip(np.nan_to_num(day - last, nan=cap), 0, cap)
        out[f"Before{name}"] = np.clip(np.nan_to_num(nxt - day, nan=cap), 0, cap)
    return out


def _durations(out: pd.DataFrame) -> pd.DataFrame:
    comp_year = out["CompetitionOpenSinceYear"].fillna(1900).astype(int)
    comp_month = out["CompetitionOpenSinceMonth"].fillna(1).astype(int)
    months = (out["Date"].dt.year - comp_year) * 12 + (out["Date"].dt.month - comp_month)
    out["CompetitionMonthsOpen"] = np.clip(months, 0, 24)
    out["CompetitionDistance"] = out["CompetitionDistance"].fillna(out["CompetitionDistance"].max() * 2)
    p2_year = out["Promo2SinceYear"].fillna(1900).astype(int)
    p2_week = out["Promo2SinceWeek"].fillna(1).astype(int)
    weeks = (out["Date"].dt.year - p2_year) * 52 + (out["Date"].dt.isocalendar().week.astype(int) - p2_week)
    out["Promo2Weeks"] = np.where(out["Promo2"] > 0, np.clip(weeks, 0, 25), 0)
    out["PromoInterval"] = out["PromoInterval"].fillna("")
    return out


def features(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) tables with every feature; train keeps open days with sales, as the lesson does."""
    both = pd.concat([tables["train"].assign(_split="train"), tables["test"].assign(_split="test")],
                     ignore_index=True)
    both["StateHoliday"] = both["StateHoliday"].astype(str).replace({"0.0": "0", "nan": "0"})
    both["Open"] = both["Open"].fillna(1)
    out = _elapsed(_durations(_date_parts(_join(both, tables))))
    train = out[out["_split"] == "train"].drop(columns=["_split", "Id"], errors="ignore")
    test = out[out["_split"] == "test"].drop(columns=["_split"])
    train = train[(train["Open"] > 0) & (train["Sales"] > 0)].copy()
    train["LogSales"] = np.log(train["Sales"])
    return train.sort_values(["Date", "Store"]).reset_index(drop=True), test.reset_index(drop=True)


def columns(p) -> tuple[list[str], list[str]]:
    """(categorical, continuous) columns: the generic CSV's own when it names them."""
    if p.csv.path:
        return list(p.csv.categorical or p.categorical), list(p.csv.continuous or p.continuous)
    return list(p.categorical), list(p.continuous)


def load_frames(p, work: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """(train-period rows with LogSales, test rows with answers or None, facts about the data):
    from a generic CSV, the embedded generator (written into ``work``), or a Kaggle folder."""
    if p.csv.path:
        return load_csv(Path(p.csv.path), p.csv.date, p.csv.target, [c for cols in columns(p) for c in cols]), None, \
            {"source": p.csv.path}
    if p.data == "embedded":
        from orch_rossmann import synth

        folder = work / "data"
        meta = synth.write(folder, synth.Spec(p.n_stores, p.data_seed, p.noise_sigma))
    else:
        folder, meta = Path(p.data), {}
    tables = load(folder)
    keep_for_serving(tables, work / "serving")
    train, test = features(tables)
    solution = folder / "test_solution.csv"
    if solution.exists():  # the generator keeps the test answers Kaggle kept secret
        answers = pd.read_csv(solution)
        test = test.drop(columns=["Sales"]).merge(answers, on="Id", how="left")
        test = test[(test["Open"] > 0) & (test["Sales"] > 0)].assign(LogSales=lambda f: np.log(f["Sales"]))
    else:
        test = None
    return train, test, {"source": str(folder), **meta}


def load_csv(path: Path, date: str, target: str, feature_columns: list[str]) -> pd.DataFrame:
    """Any CSV with a date, a positive target and feature columns, renamed to Date and Sales."""
    frame = read(path.parent, path.name, [date, target, *feature_columns])
    values = pd.to_numeric(frame[target], errors="coerce")
    if values.isna().any():
        raise UserError(f"{path}: column {target}: expected numbers")
    dates = pd.to_datetime(frame[date].astype(str), errors="coerce", format="ISO8601")
    if dates.isna().any():
        row = int(dates.isna().to_numpy().argmax())
        raise UserError(f"{path}: column {date}: expected dates (e.g. 2015-07-31), got {frame[date].iloc[row]!r}")
    frame = frame.assign(**{date: dates})[values > 0].copy()
    frame["LogSales"] = np.log(values[values > 0])
    return frame.rename(columns={date: "Date", target: "Sales"})


def keep_for_serving(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """What forecasting new rows takes besides the encoder: the store and side tables, and the
    train rows of the last ``ELAPSED_CAP`` days (the history the elapsed features look back on)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SIDE_TABLES:
        if name in tables:
            tables[name].to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%d")
    train = tables["train"]
    recent = train[train["Date"] > train["Date"].max() - pd.Timedelta(days=ELAPSED_CAP)]
    recent.to_csv(folder / "recent.csv", index=False, date_format="%Y-%m-%d")


def rows_to_forecast(path: Path, serving: Path) -> pd.DataFrame:
    """Rows in Kaggle's test.csv format with every feature, in the file's order: joined with the
    kept tables, elapsed features counted over the kept history and the rows themselves."""
    rows = read(path.parent, path.name, ROWS)
    if "Id" not in rows.columns:
        rows.insert(0, "Id", np.arange(1, len(rows) + 1))
    tables = {name: read(serving, f"{name}.csv") for name in SIDE_TABLES if (serving / f"{name}.csv").exists()}
    unknown = sorted(set(rows["Store"]) - set(tables["store"]["Store"]))
    if unknown:
        raise UserError(f"{path}: Store {int(unknown[0])} is not among the stores the model was trained on "
                        f"({len(unknown)} unknown store id(s))")
    tables["train"] = read(serving, "recent.csv", REQUIRED["train.csv"])
    tables["test"] = rows.assign(_row=np.arange(len(rows)))
    _, test = features(tables)
    return test.sort_values("_row").drop(columns="_row").reset_index(drop=True)
