from training.report import line_chart, render


def test_a_chart_draws_each_series_and_names_it() -> None:
    svg = line_chart("opens", {"email": [(0, 0.1), (1, 0.3)], "push": [(0, 0.2), (1, 0.1)]},
                     "hour", "share")
    assert svg.count("<polyline") == 4  # two axes, two series
    assert ">email<" in svg and ">push<" in svg and "opens" in svg


def test_a_chart_without_points_says_so() -> None:
    assert line_chart("empty", {}, "x", "y") == "<p>empty: no data</p>"


def test_the_report_escapes_what_it_shows() -> None:
    page = render("v<1>", {"churn": {"auc": 0.8, "calibration": [(0.1, 0.12, 50)],
                                     "observed_rate": 0.1}},
                  {"email": [1 / 24] * 24}, {"all": {0: 0.2, 1: 0.15}})
    assert "v&lt;1&gt;" in page and page.count("<svg") == 4
