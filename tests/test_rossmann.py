"""The rossmann plugin: the generator's files, loading and checks, features, encoders, metrics, model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from orch_rossmann import data as prepare, synth as generate
from orch_rossmann.model import EntityEmbeddingNet
from orch_rossmann.tabular import Encoder, embedding_size, mape, rmspe, time_split
from orchestrator.errors import UserError

KAGGLE_TRAIN = ["Store", "DayOfWeek", "Date", "Sales", "Customers", "Open", "Promo", "StateHoliday", "SchoolHoliday"]


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rossmann")
    meta = generate.write(folder, generate.Spec(n_stores=24, seed=1))
    return folder, meta


def test_generator_writes_kaggles_files_and_columns(kaggle):
    folder, meta = kaggle
    train = pd.read_csv(folder / "train.csv")
    assert list(train.columns) == KAGGLE_TRAIN
    assert train["Date"].min() == "2013-01-01" and train["Date"].max() == "2015-07-31"
    test = pd.read_csv(folder / "test.csv")
    assert list(test.columns) == ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday", "SchoolHoliday"]
    assert test["Date"].min() == "2015-08-01" and test["Date"].max() == "2015-09-17"  # 48 days, as on Kaggle
    store = pd.read_csv(folder / "store.csv")
    assert list(store.columns) == prepare.REQUIRED["store.csv"] and len(store) == 24
    assert set(pd.read_csv(folder / "store_states.csv")["State"]) <= set(generate.STATES)
    assert (train.loc[train["DayOfWeek"] == 7, "Open"] == 0).all()  # closed on Sundays
    assert (train.loc[train["Open"] == 0, "Sales"] == 0).all()
    assert meta["bayes_rmspe"] == pytest.approx(np.sqrt(1 - np.exp(-0.01)))


def test_generator_is_deterministic(tmp_path, kaggle):
    folder, _ = kaggle
    generate.write(tmp_path, generate.Spec(n_stores=24, seed=1))
    assert (tmp_path / "train.csv").read_bytes() == (folder / "train.csv").read_bytes()


def test_generated_sales_follow_the_structure(kaggle):
    folder, _ = kaggle
    train = pd.read_csv(folder / "train.csv")
    open_ = train[train["Open"] == 1]
    promo = np.log(open_.loc[open_["Promo"] == 1, "Sales"]).mean() - np.log(open_.loc[open_["Promo"] == 0, "Sales"]).mean()
    assert promo > 0.1  # promotions lift sales
    month = pd.to_datetime(open_["Date"]).dt.month
    assert open_.loc[month == 12, "Sales"].mean() > open_.loc[month == 1, "Sales"].mean()


def test_features_as_in_the_lesson(kaggle):
    folder, _ = kaggle
    train, test = prepare.features(prepare.load(folder))
    assert (train["Sales"] > 0).all() and (train["Open"] > 0).all()
    assert np.allclose(train["LogSales"], np.log(train["Sales"]))
    for column in ("Year", "Week", "AfterPromo", "BeforeStateHoliday", "CompetitionMonthsOpen", "Promo2Weeks",
                   "State", "Mean_TemperatureC", "trend"):
        assert train[column].notna().all(), column
    assert train["CompetitionMonthsOpen"].between(0, 24).all() and train["Promo2Weeks"].between(0, 25).all()
    one = train[train["Store"] == 1].sort_values("Date")
    promo_day = one[one["Promo"] == 1].iloc[0]
    assert promo_day["AfterPromo"] == 0 and promo_day["BeforePromo"] == 0
    assert len(test) == 24 * 48


def write(folder, name, text):
    (folder / name).write_text(text)


@pytest.fixture
def broken(tmp_path, kaggle):
    source, _ = kaggle
    for name in ("train.csv", "store.csv", "test.csv"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    return tmp_path


def test_missing_file(broken):
    (broken / "store.csv").unlink()
    with pytest.raises(UserError, match="store.csv: file not found"):
        prepare.load(broken)


def test_missing_column(broken):
    frame = pd.read_csv(broken / "train.csv").drop(columns=["Promo"])
    frame.to_csv(broken / "train.csv", index=False)
    with pytest.raises(UserError, match="train.csv: missing column\\(s\\) Promo"):
        prepare.load(broken)


def test_bad_date_and_bad_number(broken):
    frame = pd.read_csv(broken / "train.csv")
    frame.loc[3, "Date"] = "31/07/2015"
    frame.to_csv(broken / "train.csv", index=False)
    with pytest.raises(UserError, match="train.csv: column Date: expected YYYY-MM-DD, got '31/07/2015' at data row 4"):
        prepare.load(broken)
    frame.loc[3, "Date"] = "2015-07-31"
    frame["Sales"] = frame["Sales"].astype(object)
    frame.loc[5, "Sales"] = "lots"
    frame.to_csv(broken / "train.csv", index=False)
    with pytest.raises(UserError, match="train.csv: column Sales: expected numbers, got 'lots' at data row 6"):
        prepare.load(broken)


def test_store_missing_from_store_csv(broken):
    store = pd.read_csv(broken / "store.csv")
    store[store["Store"] != 5].to_csv(broken / "store.csv", index=False)
    with pytest.raises(UserError, match="train.csv: Store 5 is not in store.csv"):
        prepare.load(broken)


def test_empty_file(broken):
    write(broken, "test.csv", "")
    with pytest.raises(UserError, match="test.csv: the file is empty"):
        prepare.load(broken)


def test_encoder_fits_on_train_and_maps_unseen_values_to_unknown():
    train = pd.DataFrame({"c": ["a", "b", "a", None], "x": [1.0, 2.0, 3.0, 4.0]})
    val = pd.DataFrame({"c": ["b", "z", None], "x": [10.0, None, 2.5]})
    enc = Encoder(["c"], ["x"]).fit(train)
    assert enc.categories["c"] == ["a", "b", "nan"] and enc.n_codes("c") == 4
    assert enc.codes(val)[:, 0].tolist() == [2, 0, 3]  # z was never seen: the unknown code 0
    scaled = enc.scaled(val)[:, 0]
    assert scaled[0] == pytest.approx((10 - 2.5) / np.std([1, 2, 3, 4], ddof=1))  # train statistics only
    assert scaled[1] == 0.0


def test_embedding_size_rule():
    assert [embedding_size(n) for n in (3, 8, 13, 99, 1116)] == [2, 4, 7, 50, 50]


def test_time_split_keeps_the_last_weeks():
    frame = pd.DataFrame({"Date": pd.date_range("2015-01-01", "2015-03-31"), "v": 1})
    head, val = time_split(frame, "Date", 6)
    assert val["Date"].min() == pd.Timestamp("2015-02-18") and len(val) == 42
    assert head["Date"].max() < val["Date"].min()


def test_metrics():
    y, p = np.array([100.0, 200.0]), np.array([110.0, 180.0])
    assert rmspe(y, p) == pytest.approx(0.1)
    assert mape(y, p) == pytest.approx(0.1)


def test_network_shapes_and_range():
    net = EntityEmbeddingNet([5, 8], [3, 4], 2, [16, 8], [0.0, 0.1], 0.04, (0.0, 12.0))
    out = net(torch.tensor([[1, 2], [4, 7], [0, 0]]), torch.randn(3, 2))
    assert out.shape == (3,) and (out >= 0).all() and (out <= 12).all()
    assert net.embedding_matrix(1).shape == (8, 4)


def _any_csv(path, n_days=120, shops=6, seed=0):
    """A sales CSV that shares no column name with Rossmann's: ISO dates, its own categoricals."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2021-01-01", periods=n_days, freq="D")
    rows = [{"day": d.strftime("%Y-%m-%d"), "shop": f"s{s}", "weekday": d.dayofweek, "temp": float(rng.normal(10, 5)),
             "revenue": float(np.exp(5 + 0.3 * s + 0.2 * (d.dayofweek < 5) + rng.normal(0, 0.1)))}
            for d in days for s in range(shops)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_a_csv_with_its_own_columns_and_iso_dates_runs_end_to_end(tmp_path):
    """The generic path reads the CSV's own columns (not Rossmann's) and parses its date column."""
    import subprocess
    import sys

    import yaml

    csv = _any_csv(tmp_path / "sales.csv")
    params = {"rossmann": {"csv": {"path": str(csv), "date": "day", "target": "revenue", "categorical": ["shop", "weekday"],
                                   "continuous": ["temp"]},
                           "valid_weeks": 2, "train_rows": None, "epochs": 1, "layers": [8], "dropouts": [0.0], "bs": 64,
                           "models": ["gbm"], "gbm": {"n_estimators": 10}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run([sys.executable, "-m", "orchestrator", "-q", "run", "rossmann", "--out", "work"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                         "MLFLOW_TRACKING_URI": ""})
    assert out.returncode == 0, out.stderr
    embedded = sorted(p.name for p in (tmp_path / "work" / "embeddings").glob("*.csv"))
    assert embedded == ["shop.csv", "weekday.csv"]
    comparison = pd.read_csv(tmp_path / "work" / "gbm" / "comparison.csv")
    assert set(comparison["features"]) == {"plain", "embeddings"} and (comparison["val_mape"] < 0.5).all()

    # serving: the CSV's rows get its own columns back with the forecast the network gave them
    served = subprocess.run([sys.executable, "-m", "orchestrator", "predict", "rossmann", "--file", str(csv)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 2 and "run `dvc repro` or pass --run ID" in served.stderr  # no pipeline output here
    from orch_rossmann.commands import Forecaster
    from orch_rossmann.model import build
    from orch_rossmann.train import predict, to_tensors
    from orchestrator import load_model

    forecast = Forecaster(tmp_path / "work" / "train", tmp_path / "work" / "prepare").predict(csv)
    rows = pd.read_csv(csv)
    assert list(forecast.columns) == [*rows.columns, "forecast"] and len(forecast) == len(rows)
    days = pd.to_datetime(rows["day"])
    with np.load(tmp_path / "work" / "prepare" / "val.npz") as z:
        val = np.exp(predict(load_model(tmp_path / "work" / "train", "model", build),
                             to_tensors({k: z[k] for k in z.files}, "cpu")))
    np.testing.assert_allclose(forecast["forecast"][days > days.max() - pd.Timedelta(weeks=2)], val, rtol=1e-3)

    params["rossmann"]["csv"]["date"] = "shop"  # not a date column: one line naming file and column
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    bad = subprocess.run([sys.executable, "-m", "orchestrator", "run", "rossmann"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(f"orch: error: {csv}: column shop:")


@pytest.mark.integration
def test_rossmann_meets_the_contract_and_orch_predict_forecasts_new_rows_as_the_network_scored_them(check_task,
                                                                                                    orch_sandbox):
    """Kaggle's test.csv rows, fed through ``orch predict rossmann --run``, get the features the
    prepare stage gave them (joins, elapsed features over the kept history): the forecasts equal
    the network's predictions on the test split, and closed stores sell nothing."""
    from orch_rossmann.model import build
    from orch_rossmann.train import predict, to_tensors
    from orchestrator import load_model

    result = check_task("rossmann", n_stores=12, epochs=1, layers=[16], dropouts=[0.0], bs=256, train_rows=3000,
                        models=["gbm"], gbm={"n_estimators": 5})
    run_id, work = result.mlflow_run.info.run_id, result.outputs
    rows = work / "prepare" / "data" / "test.csv"
    out = orch_sandbox.orch("predict", "rossmann", "--file", str(rows), "--run", run_id, "--json")
    forecast = pd.DataFrame(json.loads(out.stdout))
    test = pd.read_csv(rows)
    assert list(forecast["Id"]) == list(test["Id"])  # every row, in the file's order
    assert (forecast.loc[test["Open"] == 0, "Sales"] == 0).all()

    solution = pd.read_csv(work / "prepare" / "data" / "test_solution.csv")
    scored = forecast.merge(test[["Id", "Open"]], on="Id").merge(solution, on="Id", suffixes=("", "_true"))
    scored = scored[(scored["Open"] > 0) & (scored["Sales_true"] > 0)].sort_values(["Store", "Date"])
    model = load_model(work / "train", "model", build)
    with np.load(work / "prepare" / "test.npz") as z:
        expected = np.exp(predict(model, to_tensors({k: z[k] for k in z.files}, "cpu")))
    assert len(scored) == len(expected) > 0
    np.testing.assert_allclose(scored["Sales"].to_numpy(), expected, rtol=1e-4, atol=0.1)

    bad_csv = orch_sandbox.root / "bad.csv"
    bad_csv.write_text("Store,Date\n1,2015-08-01\n")
    bad = orch_sandbox.orch("predict", "rossmann", "--file", str(bad_csv), "--run", run_id, check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        f"orch: error: {bad_csv}: missing column(s) DayOfWeek, Open, Promo, StateHoliday, SchoolHoliday")
