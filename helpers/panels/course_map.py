"""Notebook 00's panel: a glossary explorer (English / 中文 / meaning / notebook + a tiny plot).

``GLOSSARY`` is the course's bilingual glossary, one ``Term`` per entry (notebook 00 prints
the same table; a test keeps the two in step). ``compute_glossary_entry(term)`` returns the
entry and a small picture *as data* (a list of plot elements), ``draw_glossary_entry`` draws
it. The widget adds a card above the plot with the Chinese name and the links, because
matplotlib's default fonts have no Chinese glyphs (HTML does).

Every term's figure has the same size, so that the widget keeps one figure and
``update_glossary_entry`` draws the next term into it, keeping the pictures of the last few
terms (drawn once, pasted back when the term comes back); the pictures are kept quick to draw
(filled outlines instead of histogram bars, a few ticks per axis, log-axis labels in plain text).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from helpers.backdrop import Backdrop
from helpers.i18n import N_, _, language
from helpers.panel import Control, Panel

__all__ = ["GLOSSARY", "NOTEBOOKS", "PANELS", "Term", "compute_glossary_entry",
           "draw_glossary_entry", "glossary_card_html", "update_glossary_entry"]

#: The course's notebooks: number -> (file name, title).
NOTEBOOKS = {
    0: ("00_course_map.ipynb", "Course map"),
    1: ("01_input_normalization.ipynb", "Why normalize inputs"),
    2: ("02_forward_transform.ipynb", "The forward transform"),
    3: ("03_backward_pass.ipynb", "The backward pass"),
    4: ("04_inference_statistics.ipynb", "Inference statistics"),
    5: ("05_convolutional_bn.ipynb", "Convolutional BN"),
    6: ("06_bn_in_a_network.ipynb", "BN in a real network"),
    7: ("07_why_bn_works.ipynb", "Why does it work?"),
    8: ("08_bn_in_practice.ipynb", "BN in practice"),
    9: ("09_bn_across_processes.ipynb", "BN across processes"),
}


@dataclass(frozen=True)
class Term:
    english: str
    chinese: str
    meaning: str
    notebooks: tuple


GLOSSARY = [
    Term("batch normalization", "批归一化 (批量归一化, 批标准化, 批量规范化)",
         "normalize each feature with the mini-batch's mean and variance, then scale by γ and shift by β; "
         "批量归一化 is the most common Chinese name, 批量规范化 the one of 动手学深度学习 (d2l-zh)",
         (2, 3, 4, 5, 6)),
    Term("internal covariate shift", "内部协变量偏移",
         "the change of a hidden layer's input distribution while the layers below it train; BN fixes each "
         "unit's batch mean and variance by construction, not what each example sends (notebook 02)",
         (2, 7)),
    Term("covariate shift", "协变量偏移",
         "the input distribution P(x) changes (e.g. training vs test data) while P(y ∣ x) stays the same; "
         "not 协方差偏移 ('covariance shift'), which some study notes write",
         (2, 7)),
    Term("mini-batch", "小批量",
         "the m examples used for one gradient step; BN's mean and variance are computed over it",
         (2, 4)),
    Term("moving average / exponential moving average", "滑动平均 / 指数滑动平均",
         "a running estimate, new = (1 − momentum)·old + momentum·value: recent values weigh most",
         (4,)),
    Term("momentum (of the running statistics)", "动量",
         "how much of each new batch enters the running statistics: torch 0.1 on the new batch, Keras 0.99 on the old value",
         (4,)),
    Term("normalization", "归一化 (规范化)",
         "rescaling values to a common range or scale (min-max to [0, 1], z-score...); also the family name "
         "(batch, layer, group norm); not 正则化, which is regularization",
         (1, 2, 5)),
    Term("min-max scaling", "最小-最大缩放",
         "(x − min) / (max − min): every feature spans exactly [0, 1]; one outlier squashes the rest",
         (1,)),
    Term("standardization (z-score)", "标准化 (z-score)",
         "(x − mean) / std per feature: mean 0 and standard deviation 1",
         (1, 2)),
    Term("whitening", "白化",
         "a linear map to zero mean, unit variance and no correlation (identity covariance); BN relaxes it to per-feature standardization",
         (1,)),
    Term("mean", "均值",
         "the average, μ = (1/m) Σ xᵢ",
         (1, 2)),
    Term("variance", "方差",
         "the mean squared deviation from the mean, σ² = (1/m) Σ (xᵢ − μ)²; its square root is the standard deviation",
         (1, 2)),
    Term("biased / unbiased estimate", "有偏 / 无偏估计",
         "dividing by m underestimates the population variance by the factor (m − 1)/m on average; dividing by m − 1 does not",
         (2, 4)),
    Term("scale and shift parameters (gamma, beta)", "缩放和平移参数 (γ, β)",
         "learned per feature after normalizing: y = γ·x̂ + β; they can even undo the normalization",
         (2, 3)),
    Term("identity transform", "恒等变换",
         "γ = sqrt(σ² + ε) and β = μ give y = x: BN can represent 'do nothing'",
         (2,)),
    Term("epsilon ε", "ε (epsilon)",
         "a small constant (1e-5) added to the variance so that normalizing never divides by zero",
         (2, 3)),
    Term("saturation", "饱和",
         "where an activation function is flat its gradient is nearly 0 and learning stalls: for the sigmoid, "
         "slope below 0.01 beyond z ≈ ±4.6",
         (2, 6)),
    Term("activation", "激活值 / 预激活值",
         "the output of a layer's nonlinearity (sigmoid, ReLU); the paper also calls its input an activation "
         "(BN is applied 'to activation x', the pre-activation 预激活值 W u before the sigmoid)",
         (2, 6)),
    Term("gradient", "梯度",
         "the vector of partial derivatives of the loss; it points uphill, gradient descent steps against it",
         (1, 3)),
    Term("vanishing / exploding gradient", "梯度消失 / 梯度爆炸",
         "backpropagation multiplies one factor per layer: factors below 1 (a saturated sigmoid's slope) "
         "shrink the gradient towards 0, factors above 1 blow it up",
         (2, 7)),
    Term("backpropagation", "反向传播",
         "the chain rule applied backwards through the computational graph, from the loss to every input and parameter",
         (3,)),
    Term("computational graph", "计算图",
         "a computation drawn as nodes (operations) and edges (intermediate values); backpropagation walks it in reverse",
         (3,)),
    Term("gradient check", "梯度检验",
         "comparing a hand-written gradient with centered finite differences (relative error, float64)",
         (3,)),
    Term("centered difference", "中心差分",
         "the finite difference (f(x + h) − f(x − h)) / 2h: its error shrinks like h², against h for the "
         "one-sided (f(x + h) − f(x)) / h",
         (3,)),
    Term("scale invariance", "尺度不变性",
         "BN(aWu) = BN(Wu) for a > 0 (up to ε): the output and the input gradient ignore the weights' scale, "
         "the weight gradient shrinks as 1/a",
         (3, 6)),
    Term("inference", "推理",
         "using the trained network on new data; BN then normalizes with fixed running statistics, not the batch's",
         (4,)),
    Term("running statistics", "滑动统计量 (即滑动均值与滑动方差; 滑动平均统计量)",
         "the mean and variance BN accumulates during training (running_mean, running_var) for use at inference; "
         "运行统计量, a word-for-word 'running', is not the standard term",
         (4,)),
    Term("channel", "通道",
         "one of the C planes of an (N, C, H, W) tensor; convolutional BN keeps one μ, σ², γ, β per channel",
         (5,)),
    Term("feature map", "特征图",
         "the H × W output of one convolution filter: one channel of one example",
         (5,)),
    Term("layer / group / instance normalization", "层 / 组 / 实例归一化",
         "normalize over other axes: per example over all channels (layer), over groups of channels (group), per example and channel (instance)",
         (5, 7, 8)),
    Term("learning rate", "学习率",
         "the step size η in w ← w − η·∇L; on a quadratic, gradient descent diverges above 2/λ_max",
         (1, 6)),
    Term("convergence", "收敛",
         "the iterates settle at a minimum; its speed is measured here in steps to reach a tolerance",
         (1, 6)),
    Term("condition number", "条件数",
         "κ = λ_max / λ_min of the Hessian: how elongated the loss bowl is; plain gradient descent at learning "
         "rate 1/λ_max needs about κ/2 · ln(1/tol) steps to bring the excess loss down to tol times its "
         "start, proportional to κ",
         (1,)),
    Term("Hessian", "黑塞矩阵 (海森矩阵)",
         "the matrix of second derivatives of the loss; its eigenvalues are the curvatures of the bowl",
         (1,)),
    Term("regularization", "正则化",
         "anything that reduces overfitting; BN's mini-batch noise acts as a mild regularizer; not 归一化 "
         "(normalization), which some study notes confuse with it",
         (6, 7)),
    Term("fine-tuning", "微调",
         "adapting a pretrained network to new data with a few training steps; BN's statistics then need care",
         (8,)),
    Term("frozen batch normalization", "冻结的批归一化",
         "BN with fixed statistics and γ, β: the inference transform in every mode (torchvision's FrozenBatchNorm2d)",
         (8,)),
    Term("residual connection", "残差连接",
         "a block's input added to its output, h + F(h): variances add up along the stream",
         (8,)),
    Term("zero-initialized γ", "零初始化 γ",
         "the last BN of each residual branch starts with γ = 0, so every block starts as the identity",
         (8,)),
    Term("variance shift", "方差偏移",
         "dropout before BN: the variance BN learns in training is larger than the one it meets at inference",
         (8,)),
    Term("Batch Renormalization", "批重归一化",
         "BN whose batch statistics are corrected towards the running ones by clipped factors r and d (Ioffe 2017)",
         (8,)),
    Term("half precision / mixed precision", "半精度 / 混合精度",
         "16-bit floats (float16, bfloat16) for speed and memory, with sensitive sums such as BN's statistics kept in float32",
         (8,)),
    Term("Welford's algorithm", "Welford 算法",
         "a one-pass mean and variance that updates a running mean and sum of squared deviations, never squaring raw values",
         (8,)),
    Term("padding and mask", "填充与掩码",
         "filler positions that make variable-length sequences one array, and the flags saying which positions are real",
         (8,)),
    Term("data parallelism", "数据并行",
         "k processes each hold a copy of the model and take a shard of the mini-batch; their gradients are summed so that all take the same step",
         (9,)),
    Term("process group", "进程组",
         "the processes that take part in collective operations, each with a rank 0 … k − 1 (torch.distributed.init_process_group)",
         (9,)),
    Term("all-reduce", "全归约",
         "a collective operation: every process contributes a tensor and every process receives their sum",
         (9,)),
    Term("all-gather", "全收集",
         "a collective operation: every process contributes a tensor and every process receives all of them",
         (9,)),
    Term("synchronized batch normalization", "同步批归一化",
         "BN whose batch statistics come from the shards of all processes, so that it equals BN on the whole batch",
         (9,)),
]

TERMS = tuple(term.english for term in GLOSSARY)


def term_label(english: str) -> str:
    """A term as the explorer's dropdown lists it: the English term, and in the Chinese edition
    its Chinese name first (without the synonyms)."""
    if language() == "en":
        return english
    chinese = GLOSSARY[TERMS.index(english)].chinese
    return f"{chinese.split(' (')[0]} · {english}"


def notebook_link(number: int) -> str:
    filename, title = NOTEBOOKS[number]
    return f'<a href="{filename}">{number:02d} {html.escape(title)}</a>'


def glossary_card_html(term: str) -> str:
    """The card the widget shows above the plot: English, 中文, meaning, notebooks."""
    entry = GLOSSARY[TERMS.index(term)]
    links = ", ".join(notebook_link(n) for n in entry.notebooks)
    return (
        '<div style="border-left:4px solid #1f77b4;padding:0.3em 0.9em;max-width:46em">'
        f'<b style="font-size:1.15em">{html.escape(entry.english)}</b> &nbsp;·&nbsp; '
        f'<span style="font-size:1.25em">{html.escape(entry.chinese)}</span><br>'
        f"{html.escape(entry.meaning)}<br><small>in {links}</small></div>"
    )


# ----------------------------------------------------------------------------------------
# The tiny pictures, as data: each returns a list of panels, each a dict with "items"
# (("line", x, y, style), ("hist", values, style), ...) and axis settings.
# ----------------------------------------------------------------------------------------

_RNG_SEED = 7


def _rng():
    return np.random.default_rng(_RNG_SEED)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _batch_normalization():
    x = _rng().gamma(2.0, 2.0, size=400) + 3.0
    x_hat = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    return [{"title": _("one feature before and after BN"), "xlabel": _("value"), "items": [
        ("hist", x, dict(bins=30, alpha=0.6, label=_("before: mean {value:.1f}, std {value2:.1f}").format(value=x.mean(), value2=x.std()))),
        ("hist", x_hat, dict(bins=30, alpha=0.6, label=_("after: mean 0, std 1 (γ = 1, β = 0)"))),
    ], "legend": True}]


#: the steps at which the glossary's tiny network records its hidden unit's input
ICS_STEPS = (0, 100, 300)


@lru_cache(maxsize=1)
def tiny_network_run(steps=ICS_STEPS, seed=_RNG_SEED):
    """A real, recorded training run, small enough for the glossary: a 2 -> 16 -> 16 -> 1 sigmoid
    network (no BN) trained by plain SGD (batches of 32, learning rate 4) on a curved two-class
    problem. Returns {step: (300,) input of unit 0 of the second hidden layer, for 300 fixed
    examples} at each of ``steps``, and the final training accuracy under "accuracy".
    Numpy only, about 300 steps: tens of milliseconds, computed once."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 2))
    y = (np.sin(2 * x[:, 0]) + x[:, 1] > 0).astype(float)
    probe = x[:300]
    sizes = (2, 16, 16, 1)
    weights = [rng.normal(0.0, 1.0 / np.sqrt(a), (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [np.zeros(b) for b in sizes[1:]]

    def forward(inputs):
        h1 = _sigmoid(inputs @ weights[0] + biases[0])
        z2 = h1 @ weights[1] + biases[1]
        h2 = _sigmoid(z2)
        return h1, z2, h2, _sigmoid(h2 @ weights[2] + biases[2])[:, 0]

    recorded = {}
    for step in range(max(steps) + 1):
        if step in steps:
            recorded[step] = forward(probe)[1][:, 0].copy()
        if step == max(steps):
            break
        batch = rng.integers(0, len(x), 32)
        h1, _a1, h2, p = forward(x[batch])
        d3 = ((p - y[batch]) / len(batch))[:, None]  # cross-entropy through the output sigmoid
        d2 = (d3 @ weights[2].T) * h2 * (1 - h2)
        d1 = (d2 @ weights[1].T) * h1 * (1 - h1)
        for k, (below, delta) in enumerate(((x[batch], d1), (h1, d2), (h2, d3))):
            weights[k] -= 4.0 * below.T @ delta
            biases[k] -= 4.0 * delta.sum(axis=0)
    recorded["accuracy"] = float(((forward(x)[3] > 0.5) == y).mean())
    return recorded


def _internal_covariate_shift():
    run = tiny_network_run()
    items = [("hist", run[step], dict(bins=30, alpha=0.5, label=_("after {step} steps").format(step=step))) for step in ICS_STEPS]
    return [{"title": _("a hidden unit's input while the layer below trains"), "xlabel": _("input to the unit"),
             "items": items, "legend": True,
             "note": _("a tiny sigmoid network trained here, {value:.0%} accurate at the end").format(value=run['accuracy'])}]


def _covariate_shift():
    rng = _rng()
    train, test = rng.normal(-1, 0.7, 300), rng.normal(1.2, 0.7, 300)
    x = np.linspace(-3.5, 3.5, 200)
    return [{"title": _("same rule y = f(x), different inputs"), "xlabel": "x", "items": [
        ("hist", train, dict(bins=25, alpha=0.5, density=True, label=_("training inputs"))),
        ("hist", test, dict(bins=25, alpha=0.5, density=True, label=_("test inputs"))),
        ("line", x, 0.3 * np.sin(1.5 * x) + 0.3, dict(color="black", label="y = f(x)")),
    ], "legend": True}]


def _mini_batch():
    rng = _rng()
    population = rng.normal(2.0, 1.0, 2000)
    batch = population[rng.choice(2000, 16, replace=False)]
    return [{"title": _("a mini-batch of m = 16 from the data"), "xlabel": _("value"), "items": [
        ("hist", population, dict(bins=40, alpha=0.35, density=True, label=_("all data"))),
        ("scatter", batch, np.full(16, 0.02), dict(color="tab:red", s=18, label=_("one mini-batch"))),
        ("vline", population.mean(), dict(color="black", label=_("data mean"))),
        ("vline", batch.mean(), dict(color="tab:red", ls="--", label=_("batch mean (noisy)"))),
    ], "legend": True}]


def _moving_average():
    rng = _rng()
    values = 1.0 + rng.normal(0, 0.3, 60)
    ema, running = [], 0.0
    for v in values:
        running = 0.9 * running + 0.1 * v
        ema.append(running)
    steps = np.arange(60)
    return [{"title": _("EMA with momentum 0.1, starting from 0"), "xlabel": _("batch number"), "items": [
        ("line", steps, values, dict(marker=".", lw=0.6, alpha=0.6, label=_("batch means"))),
        ("line", steps, np.array(ema), dict(lw=2, label=_("exponential moving average"))),
        ("hline", 1.0, dict(color="black", ls=":", label=_("true mean"))),
    ], "legend": True}]


def _momentum():
    rng = _rng()
    values = 1.0 + rng.normal(0, 0.3, 60)
    items = []
    for momentum in (0.02, 0.1, 0.5):
        running, path = 0.0, []
        for v in values:
            running = (1 - momentum) * running + momentum * v
            path.append(running)
        items.append(("line", np.arange(60), np.array(path), dict(label=_("momentum {momentum}").format(momentum=momentum))))
    items.append(("hline", 1.0, dict(color="black", ls=":")))
    return [{"title": _("larger momentum: faster but noisier"), "xlabel": _("batch number"), "items": items, "legend": True}]


def _normalization():
    rng = _rng()
    age, km = rng.uniform(0, 30, 60), rng.uniform(0, 300_000, 60)
    jitter = rng.uniform(-0.15, 0.15, (2, 60))
    strips = {"yticks": [_("age"), _("distance")], "ylim": (-0.6, 1.6)}
    return [
        {"title": _("raw, on one axis: age is a dot at 0"), "xlabel": _("value (years or km)"), "items": [
            ("scatter", age, jitter[0], dict(s=8)), ("scatter", km, 1 + jitter[1], dict(s=8))], **strips},
        {"title": _("each feature rescaled to [0, 1]"), "xlabel": _("scaled value"), "items": [
            ("scatter", age / 30, jitter[0], dict(s=8)), ("scatter", km / 300_000, 1 + jitter[1], dict(s=8))],
         **strips},
    ]


def _min_max():
    rng = _rng()
    x = np.append(rng.normal(50, 10, 60), 400.0)
    scaled = (x - x.min()) / (x.max() - x.min())
    return [{"title": _("min-max with one outlier: the rest is squashed"), "xlabel": _("scaled value"),
             "items": [("scatter", scaled, rng.uniform(0, 1, len(x)), dict(s=10)),
                       ("vline", 0.0, dict(color="0.5", ls=":")), ("vline", 1.0, dict(color="0.5", ls=":"))],
             "yticks": False}]


def _standardization():
    rng = _rng()
    x = rng.normal(170, 8, 400)
    return [
        {"title": _("raw"), "xlabel": _("height (cm)"), "items": [("hist", x, dict(bins=30))]},
        {"title": _("z-scored"), "xlabel": _("(x − mean) / std"),
         "items": [("hist", (x - x.mean()) / x.std(), dict(bins=30, color="tab:orange"))]},
    ]


def _whitening():
    rng = _rng()
    x = rng.normal(size=(300, 2)) @ np.linalg.cholesky(np.array([[1, 0.85], [0.85, 1]])).T * [1, 2]
    z = (x - x.mean(0)) / x.std(0)
    values, vectors = np.linalg.eigh(np.cov(x.T, bias=True))
    white = (x - x.mean(0)) @ vectors @ np.diag(values**-0.5) @ vectors.T
    limits = (-4, 4)
    return [
        {"title": _("z-scored: still tilted"), "items": [("scatter", z[:, 0], z[:, 1], dict(s=5))],
         "aspect": "equal", "xlim": limits, "ylim": limits},
        {"title": _("whitened: round"), "items": [("scatter", white[:, 0], white[:, 1], dict(s=5, color="tab:green"))],
         "aspect": "equal", "xlim": limits, "ylim": limits},
    ]


def _mean():
    x = _rng().gamma(2.0, 1.5, 300)
    return [{"title": _("the mean: the balance point"), "xlabel": _("value"), "items": [
        ("hist", x, dict(bins=30, alpha=0.7)),
        ("vline", x.mean(), dict(color="black", lw=2, label=_("mean = {value:.2f}").format(value=x.mean()))),
    ], "legend": True}]


def _variance():
    rng = _rng()
    return [{"title": _("same mean, different variance"), "xlabel": _("value"), "items": [
        ("hist", rng.normal(0, 0.5, 500), dict(bins=30, alpha=0.6, density=True, label="σ² = 0.25")),
        ("hist", rng.normal(0, 2.0, 500), dict(bins=30, alpha=0.6, density=True, label="σ² = 4")),
    ], "legend": True}]


def _biased_unbiased():
    rng = _rng()
    sizes = np.array([2, 3, 4, 6, 8, 12, 16, 32, 64])
    biased = [np.mean(rng.normal(size=(4000, m)).var(axis=1)) for m in sizes]
    return [{"title": _("average batch variance (true variance 1)"), "xlabel": _("batch size m"), "items": [
        ("line", sizes, np.array(biased), dict(marker="o", label=_("divide by m (biased)"))),
        ("line", sizes, np.array(biased) * sizes / (sizes - 1), dict(marker="s", label=_("divide by m − 1 (unbiased)"))),
        ("line", sizes, (sizes - 1) / sizes, dict(color="0.5", ls=":", label="(m − 1)/m")),
    ], "legend": True}]


def _gamma_beta():
    x_hat = _rng().normal(size=500)
    return [{"title": _("y = γ·x̂ + β with γ = 0.5, β = 2"), "xlabel": _("value"), "items": [
        ("hist", x_hat, dict(bins=30, alpha=0.6, label=_("x̂ (mean 0, std 1)"))),
        ("hist", 0.5 * x_hat + 2.0, dict(bins=30, alpha=0.6, label=_("y (mean 2, std 0.5)"))),
    ], "legend": True}]


def _identity():
    x = _rng().gamma(2.0, 2.0, 200) + 3
    x_hat = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    y = np.sqrt(x.var() + 1e-5) * x_hat + x.mean()
    return [{"title": _("γ = sqrt(σ²+ε), β = μ: y equals x"), "xlabel": "x", "ylabel": "y", "items": [
        ("scatter", x, y, dict(s=8)), ("line", [x.min(), x.max()], [x.min(), x.max()], dict(color="0.5", ls=":")),
    ]}]


def _epsilon():
    var = np.logspace(-8, 0, 200)
    return [{"title": _("1 / sqrt(σ² + ε) stays finite"), "xlabel": _("batch variance σ²"), "items": [
        ("line", var, 1 / np.sqrt(var), dict(label="ε = 0")),
        ("line", var, 1 / np.sqrt(var + 1e-5), dict(label="ε = 1e-5")),
    ], "legend": True, "xscale": "log", "yscale": "log"}]


#: "saturated": the sigmoid's slope below this (notebook 02's definition)
SATURATION_SLOPE = 0.01


def saturation_threshold(slope=SATURATION_SLOPE) -> float:
    """The |z| beyond which sigmoid'(z) = s (1 - s) < slope: s = (1 ± sqrt(1 - 4 slope)) / 2."""
    root = np.sqrt(1 - 4 * slope)
    return float(np.log((1 + root) / (1 - root)))


def _saturation():
    x = np.linspace(-8, 8, 300)
    s = _sigmoid(x)
    edge = saturation_threshold()
    return [{"title": _("sigmoid and its slope: saturated beyond |z| = {edge:.2f}").format(edge=edge), "xlabel": _("input z"), "items": [
        ("line", x, s, dict(label=_("sigmoid"))), ("line", x, s * (1 - s), dict(label=_("slope"))),
        ("span", -8, -edge, dict(color="tab:red", alpha=0.12)),
        ("span", edge, 8, dict(color="tab:red", alpha=0.12, label=_("slope < {SATURATION_SLOPE}").format(SATURATION_SLOPE=SATURATION_SLOPE))),
    ], "legend": True}]


def _activation():
    z = _rng().normal(0.5, 1.5, 500)
    return [
        {"title": _("pre-activation z = W u (BN's input)"), "xlabel": "z", "items": [
            ("hist", z, dict(bins=30, alpha=0.7))]},
        {"title": _("activation σ(z)"), "xlabel": "σ(z)", "items": [
            ("hist", _sigmoid(z), dict(bins=30, alpha=0.7, color="tab:orange"))]},
    ]


def _vanishing_exploding():
    layers = np.arange(1, 31)
    return [{"title": _("one factor per layer, multiplied"), "xlabel": _("layers backpropagated through"), "items": [
        ("line", layers, 0.25**layers, dict(label=_("× 0.25 (a sigmoid's largest slope)"))),
        ("line", layers, 0.9**layers, dict(label="× 0.9")),
        ("line", layers, 1.5**layers, dict(label="× 1.5")),
        ("hline", 1.0, dict(color="0.5", ls=":")),
    ], "legend": True, "yscale": "log", "ylabel": _("gradient factor")}]


def _centered_difference():
    x = np.linspace(0.0, 1.6, 100)
    x0, h = 0.7, 0.5
    tangent = np.sin(x0) + np.cos(x0) * (x - x0)
    forward = np.sin(x0) + (np.sin(x0 + h) - np.sin(x0)) / h * (x - x0)
    centered = np.sin(x0) + (np.sin(x0 + h) - np.sin(x0 - h)) / (2 * h) * (x - x0)
    return [{"title": _("slopes at x = 0.7, step h = 0.5"), "xlabel": "x", "items": [
        ("line", x, np.sin(x), dict(color="black", label=_("sin x"))),
        ("line", x, tangent, dict(color="0.5", ls=":", label=_("tangent (exact slope)"))),
        ("line", x, forward, dict(label=_("one-sided (x, x + h)"))),
        ("line", x, centered, dict(label=_("centered (x − h, x + h)"))),
        ("scatter", [x0 - h, x0 + h], np.sin([x0 - h, x0 + h]), dict(color="tab:orange", s=14)),
    ], "legend": True, "ylim": (-0.2, 1.3)}]


def _scale_invariance():
    rng = _rng()
    z = rng.normal(size=(400, 3)) @ np.array([0.8, -0.3, 0.5])  # W u for one unit

    def bn(values):
        return (values - values.mean()) / np.sqrt(values.var() + 1e-5)

    return [
        {"title": _("W u and 5 W u"), "xlabel": _("input to BN"), "items": [
            ("hist", z, dict(bins=30, alpha=0.6, label="a = 1")),
            ("hist", 5 * z, dict(bins=30, alpha=0.6, label="a = 5"))], "legend": True},
        {"title": _("BN(W u) and BN(5 W u): the same"), "xlabel": _("output of BN"), "items": [
            ("hist", bn(z), dict(bins=30, alpha=0.6, label="a = 1")),
            ("hist", bn(5 * z), dict(bins=30, histtype="step", lw=1.5, label="a = 5"))], "legend": True},
    ]


def _quadratic_grid(h):
    w = np.linspace(-2, 2, 81)
    w1, w2 = np.meshgrid(w, w)
    return w, w1, w2, 0.5 * (h[0] * w1**2 + h[1] * w2**2)


def _gradient():
    w, w1, w2, loss = _quadratic_grid((1.0, 4.0))
    g = np.linspace(-1.6, 1.6, 7)
    gx, gy = np.meshgrid(g, g)
    return [{"title": _("gradient arrows point uphill"), "items": [
        ("contour", w, w, loss, dict(levels=8, colors="0.6")),
        ("quiver", gx, gy, gx * 1.0, gy * 4.0,
         dict(color="tab:red", angles="xy", scale_units="xy", scale=6, width=0.007)),
    ], "aspect": "equal"}]


def _graph(highlight_backward: bool):
    nodes = {"x": (0, 0), "μ": (1, 1), "σ²": (2, 1), "x̂": (3, 0), "y": (4, 0), "loss": (5, 0)}
    edges = [("x", "μ"), ("x", "σ²"), ("μ", "σ²"), ("x", "x̂"), ("μ", "x̂"), ("σ²", "x̂"), ("x̂", "y"), ("y", "loss")]
    items = []
    for a, b in edges:
        (x0, y0), (x1, y1) = nodes[a], nodes[b]
        if highlight_backward:
            items.append(("arrow", x1, y1, x0, y0, dict(color="tab:red")))
        else:
            items.append(("arrow", x0, y0, x1, y1, dict(color="0.3")))
    for name, (x, y) in nodes.items():
        items.append(("text", x, y, name, dict(ha="center", va="center", fontsize=11,
                                                bbox=dict(boxstyle="round", fc="white", ec="0.4"))))
    title = "gradients flow back along every edge" if highlight_backward else "BN's forward pass as a graph"
    return [{"title": title, "items": items, "xlim": (-0.5, 5.5), "ylim": (-0.6, 1.6), "axis_off": True}]


def _gradient_check():
    h = np.logspace(-12, -1, 60)
    x = 0.7
    exact = np.cos(x)
    error = np.abs((np.sin(x + h) - np.sin(x - h)) / (2 * h) - exact) / abs(exact)
    return [{"title": _("centered difference of sin at 0.7"), "xlabel": _("step h"), "ylabel": _("relative error"), "items": [
        ("line", h, np.maximum(error, 1e-17), dict(marker=".")),
    ], "xscale": "log", "yscale": "log"}]


def _inference():
    rng = _rng()
    example = 1.0
    train_outputs = []
    for _step in range(40):
        batch = np.append(rng.normal(0, 1, 7), example)
        train_outputs.append((example - batch.mean()) / np.sqrt(batch.var() + 1e-5))
    return [{"title": _("the same example, normalized 40 times"), "xlabel": _("repeat"), "items": [
        ("scatter", np.arange(40), np.array(train_outputs), dict(s=10, label=_("training mode: depends on the batch"))),
        ("hline", example, dict(color="tab:green", lw=2, label=_("inference: running stats, fixed"))),
    ], "legend": True}]


def _running_statistics():
    rng = _rng()
    mean, var = 0.0, 1.0
    means, variances = [], []
    for _step in range(80):
        batch = rng.normal(3.0, 2.0, 32)
        mean = 0.9 * mean + 0.1 * batch.mean()
        var = 0.9 * var + 0.1 * batch.var(ddof=1)
        means.append(mean)
        variances.append(var)
    steps = np.arange(80)
    return [{"title": _("running_mean → 3, running_var → 4"), "xlabel": _("batch number"), "items": [
        ("line", steps, np.array(means), dict(label=_("running_mean"))),
        ("line", steps, np.array(variances), dict(label=_("running_var"))),
        ("hline", 3.0, dict(color="tab:blue", ls=":")), ("hline", 4.0, dict(color="tab:orange", ls=":")),
    ], "legend": True}]


def _channel():
    items = []
    for c, color in enumerate(["tab:red", "tab:green", "tab:blue"]):
        items.append(("rect", c * 0.35, c * 0.35, 2, 2, dict(fc=color, ec="black", alpha=0.55)))
        items.append(("text", 3.0, 0.4 + 0.6 * c, _("channel {c}").format(c=c), dict(color=color, fontsize=9)))
    items.append(("text", 1.4, -0.45, _("one (N, C, H, W) example with C = 3"), dict(ha="center", fontsize=9)))
    return [{"title": _("channels: one mean/var/γ/β each"), "items": items, "xlim": (-0.3, 4.2),
             "ylim": (-0.7, 3.1), "axis_off": True, "aspect": "equal"}]


def _feature_map():
    yy, xx = np.mgrid[0:12, 0:12]
    image = np.sin(xx / 2.0) * np.cos(yy / 3.0) + 0.2 * _rng().normal(size=(12, 12))
    return [{"title": _("one 12 × 12 feature map"), "items": [("image", image, dict(cmap="viridis"))],
             "axis_off": True}]


def _norm_axes():
    panels = []
    shaded = {
        "batch": lambda n, c: c == 1,
        "layer": lambda n, c: n == 1,
        "instance": lambda n, c: n == 1 and c == 1,
        "group": lambda n, c: n == 1 and c in (0, 1),
    }
    for name, chosen in shaded.items():
        items = []
        for n in range(4):
            for c in range(4):
                color = "tab:orange" if chosen(n, c) else "0.92"
                items.append(("rect", c, 3 - n, 0.95, 0.95, dict(fc=color, ec="0.5")))
        panels.append({"title": name, "items": items, "xlim": (0, 4), "ylim": (0, 4),
                       "aspect": "equal", "axis_off": True,
                       "note": _("rows: examples, columns: channels")})
    return panels


def _learning_rate():
    items = []
    for lr, label in ((0.1, "η = 0.1: slow"), (0.9, "η = 0.9: fast"), (2.1, "η = 2.1 > 2/λ: diverges")):
        w, path = 2.0, [2.0]
        for _step in range(12):
            w = w - lr * w  # L = w²/2, λ = 1
            path.append(w)
        items.append(("line", np.arange(13), np.array(path), dict(marker=".", label=label)))
    return [{"title": _("gradient descent on L = w²/2"), "xlabel": _("step"), "ylabel": "w", "items": items,
             "legend": True, "ylim": (-6, 6)}]


def _convergence():
    steps = np.arange(200)
    items = [("line", steps, (1 - 1 / kappa) ** (2 * steps), dict(label=_("κ = {kappa}").format(kappa=kappa))) for kappa in (2, 10, 50)]
    items.append(("hline", 1e-6, dict(color="0.5", ls="--")))
    return [{"title": _("excess loss at learning rate 1/λ_max"), "xlabel": _("step"), "items": items,
             "legend": True, "yscale": "log", "ylim": (1e-8, 2)}]


def _condition_number():
    panels = []
    for h in ((1.0, 1.0), (1.0, 10.0)):
        w, _b, _curvature, loss = _quadratic_grid(h)
        panels.append({"title": f"κ = {h[1] / h[0]:.0f}", "items": [("contour", w, w, loss, dict(levels=8, colors="0.4"))],
                       "aspect": "equal"})
    return panels


def _hessian():
    w = np.linspace(-2, 2, 100)
    return [{"title": _("curvature along the eigen-directions"), "xlabel": _("distance from the minimum"), "items": [
        ("line", w, 0.5 * 1.0 * w**2, dict(label=_("λ = 1 (flat direction)"))),
        ("line", w, 0.5 * 10.0 * w**2, dict(label=_("λ = 10 (steep direction)"))),
    ], "legend": True, "ylim": (0, 6)}]


def _regularization():
    rng = _rng()
    x = np.sort(rng.uniform(-1, 1, 14))
    y = np.sin(2.5 * x) + rng.normal(0, 0.25, 14)
    grid = np.linspace(-1, 1, 200)
    powers = np.vander(x, 10, increasing=True)
    grid_powers = np.vander(grid, 10, increasing=True)
    fits = []
    for penalty in (0.0, 1e-2):
        w = np.linalg.solve(powers.T @ powers + penalty * np.eye(10), powers.T @ y)
        fits.append(grid_powers @ w)
    return [{"title": _("degree-9 fit without and with a penalty"), "items": [
        ("scatter", x, y, dict(color="black", s=12, label=_("data"))),
        ("line", grid, fits[0], dict(label=_("unregularized"))),
        ("line", grid, fits[1], dict(label=_("regularized"))),
    ], "legend": True, "ylim": (-2, 2)}]


def _fine_tuning():
    rng = _rng()
    source, target = rng.normal(0.0, 1.0, 500), rng.normal(1.5, 0.6, 500)
    return [{"title": _("pretrained on one distribution, fine-tuned on another"), "xlabel": _("a unit's input"),
             "items": [("hist", source, dict(bins=30, alpha=0.5, density=True, label=_("pretraining data"))),
                       ("hist", target, dict(bins=30, alpha=0.5, density=True, label=_("fine-tuning data"))),
                       ("vline", 0.0, dict(color="tab:blue", ls="--", label=_("BN's stored mean")))],
             "legend": True}]


def _frozen_bn():
    x = np.linspace(-3, 3, 50)
    scale, shift = 1.5, 0.5
    return [{"title": _("frozen BN: one fixed line, in train and eval mode"), "xlabel": "x", "ylabel": _("output"),
             "items": [("line", x, scale * x + shift, dict(lw=2, label=_("y = scale·x + shift"))),
                       ("scatter", x[::5], scale * x[::5] + shift, dict(s=14, color="tab:orange",
                                                                         label=_("model.train(): the same")))],
             "legend": True}]


def _residual_connection():
    blocks = np.arange(17)
    return [{"title": _("variance of the stream h + F(h), block by block"), "xlabel": _("block"), "yscale": "log",
             "items": [("line", blocks, 2.0 ** blocks, dict(marker=".", label=_("no BN: doubles"))),
                       ("line", blocks, 1.0 + blocks, dict(marker=".", label=_("BN in F: +1 per block")))],
             "legend": True}]


def _zero_init():
    blocks = np.arange(17)
    return [{"title": _("last γ of each branch = 0: every block starts as the identity"), "xlabel": _("block"),
             "items": [("line", blocks, 1.0 + blocks, dict(marker=".", label="γ = 1")),
                       ("line", blocks, np.ones(17), dict(marker=".", label="γ = 0"))],
             "legend": True, "ylim": (0, 18)}]


def _variance_shift():
    p = np.linspace(0, 0.9, 50)
    return [{"title": _("dropout right before BN: eval output variance"), "xlabel": _("dropout rate p"),
             "items": [("line", p, 1 - p, dict(lw=2, label=_("1 − p (zero-mean input)"))),
                       ("hline", 1.0, dict(color="black", ls=":", label=_("what BN promises")))],
             "legend": True, "ylim": (0, 1.1)}]


def _batch_renorm():
    ratio = np.linspace(0.1, 5, 200)
    return [{"title": _("r = clip(σ_B / σ, 1/r_max, r_max)"), "xlabel": "σ_B / σ", "ylabel": "r",
             "items": [("line", ratio, np.clip(ratio, 1 / 3, 3), dict(lw=2, label=_("r_max = 3"))),
                       ("line", ratio, np.ones_like(ratio), dict(ls="--", label=_("r_max = 1: plain BN")))],
             "legend": True}]


def _half_precision():
    means = np.array([1, 3, 10, 30, 100, 300, 1000])
    rng = _rng()
    naive, two = [], []
    for m in means:
        x = (m + rng.normal(size=(256, 8))).astype(np.float16)
        exact = x.astype(np.float64).var(axis=0)
        with np.errstate(all="ignore"):
            n = np.float16(256)
            v1 = (np.sum(x * x, axis=0, dtype=np.float16) / n - (np.sum(x, axis=0, dtype=np.float16) / n) ** 2)
            d = x - x[0]
            c = d - np.sum(d, axis=0, dtype=np.float16) / n
            v2 = np.sum(c * c, axis=0, dtype=np.float16) / n
        naive.append(np.median(np.abs(v1.astype(float) / exact - 1)))
        two.append(np.median(np.abs(v2.astype(float) / exact - 1)))
    naive = np.where(np.isfinite(naive), naive, 1e2)
    return [{"title": _("variance in float16 (inf drawn at the top)"), "xlabel": _("mean of the activations"),
             "xscale": "log", "yscale": "log",
             "items": [("line", means, naive, dict(marker="o", label="E[x²] − E[x]²")),
                       ("line", means, np.array(two), dict(marker="s", label=_("two passes")))],
             "legend": True, "ylim": (1e-4, 3e2)}]


def _welford():
    values = _rng().normal(5.0, 2.0, 60)
    steps = np.arange(1, 61)
    mean, m2, means, variances = 0.0, 0.0, [], []
    for k, v in enumerate(values, 1):
        delta = v - mean
        mean += delta / k
        m2 += delta * (v - mean)
        means.append(mean)
        variances.append(m2 / k)
    return [{"title": _("Welford: running mean and variance, one value at a time"), "xlabel": _("values seen"),
             "items": [("line", steps, np.array(means), dict(label=_("mean"))),
                       ("line", steps, np.array(variances), dict(label=_("variance = M2 / k"))),
                       ("hline", values.mean(), dict(color="tab:blue", ls=":", label=_("np.mean of all 60"))),
                       ("hline", values.var(), dict(color="tab:orange", ls=":", label=_("np.var of all 60")))],
             "legend": True}]


def _padding_mask():
    lengths = np.array([6, 2, 4, 3])
    mask = (np.arange(6)[None, :] < lengths[:, None]).astype(float)
    return [{"title": _("a padded batch: real tokens (dark) and padding"), "xlabel": _("position"),
             "items": [("image", mask, dict(cmap="Blues", vmin=-0.3, vmax=1.2, aspect="auto"))],
             "yticks": [_("seq 1"), _("seq 2"), _("seq 3"), _("seq 4")]}]


def _process_boxes(processes=4):
    """The boxes of ``processes`` processes in a row, as plot elements, and their x centres."""
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    items, centres = [], []
    for p in range(processes):
        items.append(("rect", p * 2.2, 0.2, 1.8, 1.1, dict(fc=colors[p], alpha=0.25, ec=colors[p])))
        items.append(("text", p * 2.2 + 0.9, 0.75, _("process {p}\nmodel copy").format(p=p), dict(ha="center", va="center", fontsize=8)))
        centres.append(p * 2.2 + 0.9)
    return items, centres, colors


def _data_parallelism():
    items, centres, colors = _process_boxes()
    for i in range(16):
        items.append(("rect", 0.9 + i * 0.45, 2.3, 0.4, 0.4, dict(fc=colors[i // 4], ec="0.3")))
        if i % 4 == 1:
            items.append(("arrow", 0.9 + i * 0.45 + 0.4, 2.3, centres[i // 4], 1.3, dict(color="0.4")))
    items.append(("text", 4.3, -0.25, _("gradients summed (all-reduce): every copy takes the same step"),
                  dict(ha="center", fontsize=8)))
    return [{"title": _("a mini-batch of 16 split over 4 processes"), "items": items, "xlim": (-0.2, 8.8),
             "ylim": (-0.5, 2.9), "axis_off": True}]


def _process_group():
    angles = np.pi / 2 - np.arange(4) * np.pi / 2
    xs, ys = np.cos(angles), np.sin(angles)
    items = [("line", [xs[a], xs[b]], [ys[a], ys[b]], dict(color="0.6", lw=1))
             for a in range(4) for b in range(a + 1, 4)]
    for rank in range(4):
        items.append(("text", xs[rank], ys[rank], _("rank {rank}").format(rank=rank), dict(
            ha="center", va="center", fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.4"))))
    items.append(("text", 0, -1.45, _("meeting at tcp://127.0.0.1:<port>"), dict(ha="center", va="center",
                                                                             fontsize=7, color="0.3")))
    return [{"title": _("a process group of 4: every rank reaches every other"), "items": items,
             "xlim": (-1.6, 1.6), "ylim": (-1.6, 1.35), "axis_off": True, "aspect": "equal"}]


def _bars(values, colors, title, stacked=False):
    items = []
    for p, value in enumerate(values):
        if stacked:  # a list of (height, color) blocks
            bottom = 0.0
            for height, color in value:
                items.append(("rect", p - 0.35, bottom, 0.7, height, dict(fc=color, ec="white")))
                bottom += height
        else:
            items.append(("rect", p - 0.35, 0, 0.7, value, dict(fc=colors[p], ec="white")))
    return {"title": title, "xlabel": _("process"), "items": items, "xlim": (-0.6, 3.6), "ylim": (0, 11)}


def _all_reduce():
    _boxes, _labels, colors = _process_boxes()
    values = [1.0, 3.0, 2.0, 4.0]
    return [_bars(values, colors, "before: one value per process"),
            _bars([sum(values)] * 4, ["0.5"] * 4, "after all-reduce: every process has the sum")]


def _all_gather():
    _names, _boxes, colors = _process_boxes()
    values = [1.0, 3.0, 2.0, 4.0]
    everyone = [list(zip(values, colors))] * 4
    return [_bars(values, colors, "before: one tensor per process"),
            _bars(everyone, colors, "after all-gather: every process has all four", stacked=True)]


def _synchronized_bn():
    rng = _rng()
    shards = rng.normal(0, 1, (4, 8)) + np.array([[-0.8], [0.5], [0.1], [1.0]])
    whole = shards.mean()
    panels = []
    for title, means in (("per-process BN: four different means", shards.mean(axis=1)),
                         ("synchronized BN: the whole batch's mean", np.full(4, whole))):
        items = [("scatter", np.repeat(np.arange(4), 8), shards.ravel(), dict(s=8, color="0.6")),
                 ("scatter", np.arange(4), means, dict(s=40, color="tab:red", label=_("mean used"))),
                 ("hline", whole, dict(color="black", lw=1, ls=":", label=_("whole batch")))]
        panels.append({"title": title, "xlabel": _("process"), "items": items, "legend": True, "ylim": (-3, 3.5)})
    return panels


_PICTURES = {
    "batch normalization": _batch_normalization,
    "internal covariate shift": _internal_covariate_shift,
    "covariate shift": _covariate_shift,
    "mini-batch": _mini_batch,
    "moving average / exponential moving average": _moving_average,
    "momentum (of the running statistics)": _momentum,
    "normalization": _normalization,
    "min-max scaling": _min_max,
    "standardization (z-score)": _standardization,
    "whitening": _whitening,
    "mean": _mean,
    "variance": _variance,
    "biased / unbiased estimate": _biased_unbiased,
    "scale and shift parameters (gamma, beta)": _gamma_beta,
    "identity transform": _identity,
    "epsilon ε": _epsilon,
    "saturation": _saturation,
    "activation": _activation,
    "gradient": _gradient,
    "vanishing / exploding gradient": _vanishing_exploding,
    "backpropagation": lambda: _graph(True),
    "computational graph": lambda: _graph(False),
    "gradient check": _gradient_check,
    "centered difference": _centered_difference,
    "scale invariance": _scale_invariance,
    "inference": _inference,
    "running statistics": _running_statistics,
    "channel": _channel,
    "feature map": _feature_map,
    "layer / group / instance normalization": _norm_axes,
    "learning rate": _learning_rate,
    "convergence": _convergence,
    "condition number": _condition_number,
    "Hessian": _hessian,
    "regularization": _regularization,
    "fine-tuning": _fine_tuning,
    "frozen batch normalization": _frozen_bn,
    "residual connection": _residual_connection,
    "zero-initialized γ": _zero_init,
    "variance shift": _variance_shift,
    "Batch Renormalization": _batch_renorm,
    "half precision / mixed precision": _half_precision,
    "Welford's algorithm": _welford,
    "padding and mask": _padding_mask,
    "data parallelism": _data_parallelism,
    "process group": _process_group,
    "all-reduce": _all_reduce,
    "all-gather": _all_gather,
    "synchronized batch normalization": _synchronized_bn,
}


def compute_glossary_entry(term: str = "batch normalization") -> dict:
    """The glossary entry for ``term`` and its picture, as data."""
    entry = GLOSSARY[TERMS.index(term)]
    return {"term": entry, "panels": _PICTURES[term]()}


def _draw_item(ax, item):
    kind, *args, style = item  # every element ends with its matplotlib style (a dict)
    if kind == "line":
        ax.plot(args[0], args[1], **style)
    elif kind == "scatter":
        ax.scatter(args[0], args[1], **style)
    elif kind == "hist":
        # one filled outline per histogram: looks like ax.hist's bars, draws much faster
        ax.hist(args[0], **{"histtype": "stepfilled", **style})
    elif kind == "vline":
        ax.axvline(args[0], **style)
    elif kind == "hline":
        ax.axhline(args[0], **style)
    elif kind == "span":
        ax.axvspan(args[0], args[1], **style)
    elif kind == "contour":
        ax.contour(args[0], args[1], args[2], **style)
    elif kind == "quiver":
        ax.quiver(*args, **style)
    elif kind == "arrow":
        x0, y0, x1, y1 = args
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", shrinkA=14, shrinkB=14, **style))
    elif kind == "text":
        ax.text(args[0], args[1], args[2], **style)
    elif kind == "rect":
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((args[0], args[1]), args[2], args[3], **style))
    elif kind == "image":
        ax.imshow(args[0], **style)
    else:
        raise ValueError(_("unknown plot element {kind!r}").format(kind=kind))


#: Every term's figure has this size, so that the widget's picture keeps its size and place
#: from term to term (and a kept figure can show any term).
FIGSIZE = (8.2, 2.9)
_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value, position=None) -> str:
    """A log axis' tick label, 10⁻⁶, in plain text (mathtext, 10^{-6}, is slow to draw)."""
    return "10" + str(round(np.log10(value))).translate(_SUPERSCRIPTS) if value > 0 else ""


def _log_scale(ax, which: str) -> None:
    """A log scale on the x or y axis, with a few labelled decades and no minor ticks (quick
    to draw)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_locator(LogLocator(numticks=6))
    axis.set_major_formatter(FuncFormatter(_power_of_ten))
    axis.set_minor_locator(NullLocator())


def _draw_panel(ax, panel) -> None:
    """One picture of an entry: its plot elements and axis settings."""
    from matplotlib.ticker import MaxNLocator

    for item in panel["items"]:
        _draw_item(ax, item)
    for which in ("x", "y"):
        if panel.get(f"{which}scale") == "log":
            _log_scale(ax, which)
        elif panel.get(f"{which}scale"):
            getattr(ax, f"set_{which}scale")(panel[f"{which}scale"])
    if "xlim" in panel:
        ax.set_xlim(panel["xlim"])
    if "ylim" in panel:
        ax.set_ylim(panel["ylim"])
    if panel.get("aspect"):
        ax.set_aspect(panel["aspect"])
    if panel.get("axis_off"):
        ax.set_axis_off()
    if panel.get("yticks") is False:
        ax.set_yticks([])
    elif panel.get("yticks"):
        ax.set_yticks(range(len(panel["yticks"])), panel["yticks"])
    for axis in (ax.xaxis, ax.yaxis):  # at most ~7 ticks on a linear axis, even a wide one
        if isinstance(axis.get_major_locator(), MaxNLocator):
            axis.get_major_locator().set_params(nbins=6)
    ax.set_title(panel.get("title", ""), fontsize=9, y=1.0)  # y given: no search for room above
    ax.set_xlabel(panel.get("xlabel", ""), fontsize=8)
    ax.set_ylabel(panel.get("ylabel", ""), fontsize=8)
    ax.tick_params(labelsize=7)
    if panel.get("legend"):
        ax.legend(fontsize=7)


def _draw_entry(figure, result) -> list:
    """An entry's pictures side by side in the figure, its name as the title; returns the
    artists drawn (the axes and the title)."""
    panels = result["panels"]
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel)
    notes = {panel["note"] for panel in panels if panel.get("note")}
    # a figure text, not the suptitle, so that every term kept in a figure has its own
    title = figure.text(0.5, 0.98, term_label(result["term"].english) + (f"   ({'; '.join(notes)})" if notes else ""),
                        ha="center", va="top", fontsize=11)
    width = figure.get_figwidth()  # margins in inches: room for tick labels such as "distance"
    figure.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.17, top=0.8, wspace=0.35)
    return [*axes, title]


def draw_glossary_entry(result):
    """A term's pictures in a figure of size ``FIGSIZE``."""
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=FIGSIZE)
    update_glossary_entry(figure, result)
    return figure


#: Terms whose pictures a widget's figure keeps (drawn once, their pixels pasted back).
KEPT_TERMS = 12


class _TermPicture(Backdrop):
    """One term's pictures in a figure that keeps several: drawn once per canvas, pasted back
    on later draws (``helpers.backdrop.Backdrop``), and drawn only while it is the term shown."""

    def draw(self, renderer):
        if self.get_visible():
            super().draw(renderer)


def update_glossary_entry(figure, result) -> None:
    """Show another term in a figure made by ``draw_glossary_entry``. Each term has its own
    kind of picture, so the figure keeps the pictures of the last ``KEPT_TERMS`` terms it
    showed, each drawn once and pasted back (a ``Backdrop``) when its term comes back; only
    the term shown is drawn."""
    kept = figure.__dict__.setdefault("_glossary_terms", {})  # term -> _TermPicture, oldest first
    term = result["term"].english
    for picture in kept.values():
        picture.set_visible(False)
    picture = kept.pop(term, None)
    if picture is None:
        picture = _TermPicture(figure, _draw_entry(figure, result))
    kept[term] = picture  # now the most recent
    picture.set_visible(True)
    while len(kept) > KEPT_TERMS:
        oldest = kept.pop(next(iter(kept)))
        for artist in oldest.still:
            artist.remove()
        oldest.remove()


class GlossaryPanel(Panel):
    """A Panel whose widget also shows the entry's card (English, 中文, meaning, links)."""

    def widget(self):
        import ipywidgets as widgets

        box = super().widget()
        card = widgets.HTML()
        chooser = box.controls["term"]

        def update(change=None):
            card.value = glossary_card_html(chooser.value)

        chooser.observe(update, names="value")
        update()
        box.children = (box.children[0], card, *box.children[1:])
        box.card = card
        return box


PANELS = [
    GlossaryPanel("glossary explorer", compute_glossary_entry, draw_glossary_entry, controls=[
        # the widget tests move through one term per kind of picture element (histogram, scatter,
        # span, contour and arrows, graph, rectangles, image, log-scale lines);
        # tests/test_course_map.py draws every term
        Control("term", "choice", "batch normalization", options=TERMS, description=N_("term"), labels=term_label,
                test_values=("batch normalization", "mini-batch", "saturation", "gradient",
                             "computational graph", "layer / group / instance normalization",
                             "feature map", "convergence")),
    ], update=update_glossary_entry)
]
