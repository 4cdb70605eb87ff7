"""Write the notebooks (outputs stripped). Run: python notebooks/_make.py"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent


def nb(cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    book = nbf.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
    return book


QUICKSTART = [
    ("md", "# Quickstart: audit the shipped log in five cells\n\n"
           "`data/anes_tax.duckdb` was produced by the collector (`make data`): ANES 1996 respondents as personas, "
           "simulated by Gemma 3 270M, reading either a library notice (control), an essay for taxing the rich "
           "(treatment) or one of two placebo texts, then answering a primary outcome, seven negative control "
           "outcomes (NCOs) and two fidelity probes, each in its own branch."),
    ("code", "import driftstats as ds\n\nlog = ds.read_log('../data/anes_tax.duckdb')\nlog"),
    ("code", "log.summary()"),
    ("md", "Do the NCOs differ between arms? The same persona appears in every arm, so permutations swap arms "
           "within persona (`strata='persona_id'`)."),
    ("code", "drift = ds.nco_test(log, strata='persona_id', n_perm=1000, seed=1)\n"
             "drift.tidy().query(\"arm == 'treatment'\")[['term', 'estimate', 'excess', 'conf_low', 'conf_high', "
             "'p_value', 'p_value_fwer']]"),
    ("code", "drift.plot('forest')"),
    ("code", "audit = ds.audit(log, n_perm=1000, seed=1)\naudit.write_html('audit.html')\naudit"),
]

SIMULATE = [
    ("md", "# Simulate a small study with the embedded model, then audit it\n\n"
           "A study declares the population, the arms, the items and the model. Here: 6 ANES personas, two arms, "
           "SmolLM2-135M (embedded, no download). Every answer is constrained to the options by outlines, every item "
           "is asked in its own branch from the shared persona + intervention prefix, and the log is written unit by "
           "unit to DuckDB (crash-safe; rerunning resumes)."),
    ("code", "from collectors.study import parse_study\nfrom collectors.runner import run_study\nimport driftstats as ds\n\n"
             "study = parse_study({\n"
             "    'name': 'notebook_demo',\n"
             "    'population': {'source': 'anes96', 'specified': ['age', 'party'], 'latent': ['education']},\n"
             "    'design': {'units_per_arm': 6, 'paired': True, 'seed': 1},\n"
             "    'model': {'path': 'smollm2-135m', 'prompt_style': 'completion', 'n_ctx': 1024},\n"
             "    'arms': [\n"
             "        {'name': 'control', 'kind': 'control', 'text': 'The library opens at nine.'},\n"
             "        {'name': 'treatment', 'kind': 'treatment', 'text': 'Taxes on the rich should fund free college.'},\n"
             "    ],\n"
             "    'items': [\n"
             "        {'name': 'support', 'role': 'primary', 'text': 'Do you favor higher taxes on the rich?',\n"
             "         'options': ['Oppose', 'Neutral', 'Favor']},\n"
             "        {'name': 'education', 'role': 'nco', 'text': 'Your education?',\n"
             "         'options': ['High school or less', 'Some college', 'College degree', 'Graduate degree']},\n"
             "        {'name': 'party_check', 'role': 'fidelity', 'attribute': 'party', 'scale': 'nominal',\n"
             "         'text': 'Which party do you identify with?', 'options': ['Democrat', 'Independent', 'Republican']},\n"
             "    ],\n"
             "})\nstudy.design"),
    ("code", "summary = run_study(study, 'notebook_demo.duckdb', overwrite=True)\nprint(summary.as_text())"),
    ("code", "log = ds.read_log('notebook_demo.duckdb')\n"
             "log.to_pandas().query(\"mode == 'sample'\")[['unit_id', 'arm', 'item', 'response', 'valid', 'option_order']].head(9)"),
    ("code", "ds.audit(log, n_perm=499, n_boot=100)"),
]

CORRECTIONS = [
    ("md", "# Corrections: NCO difference-in-differences, proximal 2SLS, calibration with placebo arms\n\n"
           "Each correction rests on an assumption the data cannot confirm; every result states it."),
    ("code", "import driftstats as ds\n\n"
             "world = ds.simulate_latent_world(equi_confounding=True, gamma=1.0, seed=3)\n"
             "units = world.sample_units(3000, seed=4)\n"
             "print('truth: tau(p_1) =', round(world.tau(world.p[1]), 3))\n"
             "ds.did_nco(units, outcome='y', nco='n', arm='t')"),
    ("md", "The decomposition of the observed contrast into effect and drift terms is exact in a simulated world:"),
    ("code", "ds.decompose_world(world)"),
    ("md", "Proximal 2SLS needs two kinds of proxies: W (NCO) and Z (negative control exposure). "
           "Note the naive second-stage SE next to the correct 2SLS sandwich SE."),
    ("code", "data = ds.simulate_proxy_data(3000, tau=1.0, seed=1)\n"
             "fit = ds.p2sls('y ~ t + x | w1 + w2 ~ z1 + z2', data)\nfit"),
    ("md", "Empirical calibration: placebo interventions are negative controls. The shipped log has two placebo arms "
           "(few: the null is poorly determined, and the result says so); a simulated study with 25 placebo arms shows "
           "the method at work."),
    ("code", "shipped = ds.read_log('../data/anes_tax.duckdb')\nds.calibrate_effect(shipped)"),
    ("code", "sim = ds.simulate_placebo_log(n_placebo=25, n_per_arm=80, bias_mean=0.3, bias_sd=0.1, treatment_bias=0.3,"
             " seed=3)\ncal = ds.calibrate_effect(sim, outcome='y')\ncal.plot()"),
]

FOREIGN = [
    ("md", "# Auditing a foreign log: an edsl `Results` export\n\n"
           "`data/edsl_example/results.csv` is edsl-shaped (CRLF line ends, multi-line quoted cells, Python-repr option "
           "lists, answers edsl failed to validate). Agents become units, their traits the persona, scenarios the arms."),
    ("code", "import driftstats as ds\n\n"
             "log = ds.read_log('../data/edsl_example/results.csv', format='edsl', arm='scenario.arm',\n"
             "                  nco=['nc_age', 'nc_region'], primary=['support'])\nlog"),
    ("code", "log.summary()"),
    ("md", "Answers edsl could not validate are kept as invalid rows with the reason, never dropped:"),
    ("code", "a = log.to_pandas()\na.loc[~a['valid'], ['unit_id', 'item', 'error']].head()"),
    ("md", "Logs from other tools are mapped onto the schema; bad input gets a named error that says how to fix it:"),
    ("code", "import pandas as pd\n"
             "foreign = pd.DataFrame({'respondent': ['a', 'b'], 'group': ['ctl', 'trt'], 'question': ['q', 'q'],\n"
             "                        'answer': ['yes', 'no']})\n"
             "try:\n    ds.read_log(foreign)\nexcept ds.errors.MissingColumnError as err:\n    print(err)"),
    ("code", "ds.read_log(foreign, mapping={'respondent': 'unit_id', 'group': 'arm', 'question': 'item', "
             "'answer': 'response'})"),
    ("code", "ds.audit(log, n_perm=1000, seed=1)"),
]

for name, cells in (("01_quickstart", QUICKSTART), ("02_simulate", SIMULATE), ("03_corrections", CORRECTIONS),
                    ("04_foreign_log", FOREIGN)):
    nbf.write(nb(cells), HERE / f"{name}.ipynb")
