"""The rossmann task's params: data, the network, and the models fed with its embeddings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestrator import Params

CATEGORICAL = ["Store", "DayOfWeek", "Year", "Month", "Day", "Week", "StateHoliday", "CompetitionMonthsOpen",
               "Promo2Weeks", "StoreType", "Assortment", "PromoInterval", "CompetitionOpenSinceYear",
               "Promo2SinceYear", "State", "Events"]
CONTINUOUS = ["CompetitionDistance", "Max_TemperatureC", "Mean_TemperatureC", "Min_TemperatureC",
              "Precipitationmm", "Mean_Humidity", "trend", "Promo", "SchoolHoliday", "AfterPromo", "BeforePromo",
              "AfterStateHoliday", "BeforeStateHoliday", "AfterSchoolHoliday", "BeforeSchoolHoliday"]


class CsvColumns(Params):
    """The generic path: any CSV whose column roles are given here."""

    path: str = Field("", description="a CSV file; empty: use the Rossmann files")
    date: str = "Date"
    target: str = "Sales"
    categorical: list[str] = []
    continuous: list[str] = []


class GBM(Params):
    n_estimators: int = Field(600, gt=0)
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(63, ge=2)
    min_child_samples: int = Field(20, ge=1)
    reg_lambda: float = Field(1.0, ge=0)
    feature_fraction: float = Field(0.8, gt=0, le=1)


class Others(Params):
    rf_trees: int = Field(60, gt=0)
    rf_max_rows: int = Field(40_000, gt=0, description="random forest trains on a sample of this many rows")
    knn_k: int = Field(10, gt=0)
    knn_max_rows: int = Field(60_000, gt=0)


class RossmannParams(Params):
    data: str = Field("embedded", description="'embedded' (generated Kaggle files) or a folder of Kaggle's files")
    n_stores: int = Field(1115, ge=12, description="embedded data: number of stores (Kaggle: 1115)")
    noise_sigma: float = Field(0.10, ge=0, le=1, description="embedded data: sd of the log-sales noise")
    data_seed: int = Field(0, description="embedded data: generator seed")
    csv: CsvColumns = CsvColumns()
    valid_weeks: int = Field(6, ge=1, description="validation = the last weeks of train (the test period is 6)")
    train_rows: int | None = Field(200_000, gt=0, description="train on a random sample of this many rows before "
                                   "the validation weeks (None: all): sparse data, where embeddings help most")
    train_dev_pct: float = Field(0.05, gt=0, lt=0.5)
    seed: int = 42
    categorical: list[str] = Field(CATEGORICAL, min_length=1)
    continuous: list[str] = CONTINUOUS
    layers: list[int] = Field([500, 250], min_length=1)
    dropouts: list[float] = [0.001, 0.01]
    emb_drop: float = Field(0.04, ge=0, lt=1)
    epochs: int = Field(10, gt=0)
    bs: int = Field(512, gt=0)
    lr: float = Field(1e-2, gt=0, le=1)
    wd: float = Field(1e-5, ge=0)
    gbm: GBM = GBM()
    others: Others = Others()
    models: list[Literal["gbm", "rf", "knn"]] = ["gbm", "rf", "knn"]

    @model_validator(mode="after")
    def _check(self) -> "RossmannParams":
        if len(self.dropouts) != len(self.layers):
            raise ValueError(f"dropouts needs one value per entry of layers ({len(self.layers)}), got {len(self.dropouts)}")
        return self
