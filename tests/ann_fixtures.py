"""Small ANNs trained in seconds for the conversion tests (digits MLP, mnist1d CNN).

Activations: ``relu``, ``clip`` (TCL: lam - relu(lam - relu(z)), lam learnable), ``qcfs``
(lam/L * clip(floor(z L/lam + 1/2), 0, L) with a straight-through floor, lam learnable).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)  # tiny models: one thread beats two contended ones by far


class TCL(nn.Module):
    def __init__(self, lam: float = 4.0):
        super().__init__()
        self.lam = nn.Parameter(torch.tensor(lam))

    def forward(self, x):
        return self.lam - F.relu(self.lam - F.relu(x))


class QCFS(nn.Module):
    def __init__(self, levels: int = 4, lam: float = 4.0):
        super().__init__()
        self.levels = levels
        self.lam = nn.Parameter(torch.tensor(lam))

    def forward(self, x):
        x = x / self.lam
        u = x * self.levels + 0.5
        x = ((u.floor() - u).detach() + u) / self.levels
        x = torch.clamp(x, 0, 1)
        return x * self.lam


def act(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "clip": TCL, "qcfs": QCFS}[kind]()


class DigitsMLP(nn.Module):
    def __init__(self, kind: str = "relu", hidden: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.a1 = act(kind)
        self.fc2 = nn.Linear(hidden, hidden)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.a2 = act(kind)
        self.fc3 = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc3(self.a2(self.bn2(self.fc2(self.a1(self.bn1(self.fc1(x)))))))


class Mnist1dCNN(nn.Module):
    def __init__(self, kind: str = "relu", pool: str = "avg", ch: int = 16):
        super().__init__()
        P = nn.AvgPool1d if pool == "avg" else nn.MaxPool1d
        layers = []
        cin = 1
        for _ in range(3):
            layers += [nn.Conv1d(cin, ch, 5, padding=2), nn.BatchNorm1d(ch), act(kind), P(2)]
            cin = ch
        self.features = nn.Sequential(*layers)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(ch * 5, 10)

    def forward(self, x):
        return self.fc(self.flat(self.features(x)))


class ResMLP(nn.Module):
    """Residual MLP with a reused ReLU module object (two call sites, one object)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.fc1(x))
        h = self.relu(self.fc2(h) + h)
        return self.fc3(h)


def digits_data(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target.astype(np.int64), test_size=0.3, random_state=seed, stratify=d.target)


def mnist1d_data(n_train: int = 4000):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 5000
    d = make_dataset(args)
    x = d["x"].astype(np.float32)[:, None, :]
    xt = d["x_test"].astype(np.float32)[:, None, :]
    return x, xt, d["y"].astype(np.int64), d["y_test"].astype(np.int64)


def train(model: nn.Module, x, y, epochs: int = 40, lr: float = 0.05, seed: int = 0, batch: int = 64) -> nn.Module:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def accuracy(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        return 100.0 * float((model(torch.as_tensor(x)).argmax(1).numpy() == y).mean())


class ResQ(nn.Module):
    """Residual MLP reusing ONE activation module object at two call sites."""

    def __init__(self, kind: str = "qcfs"):
        super().__init__()
        self.fc1 = nn.Linear(64, 48)
        self.fc2 = nn.Linear(48, 48)
        self.fc3 = nn.Linear(48, 10)
        self.act = act(kind)

    def forward(self, x):
        h = self.act(self.fc1(x))
        h = self.act(self.fc2(h) + h)
        return self.fc3(h)


class Conv2dNet(nn.Module):
    def __init__(self, kind: str = "relu", pool: str = "max"):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.a1 = act(kind)
        self.p1 = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.a2 = act(kind)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.flat(self.gap(self.a2(self.c2(self.p1(self.a1(self.b1(self.c1(x)))))))))


_CACHE: dict = {}


def trained(name: str, kind: str, **kw):
    """A trained model (cached per process): digits_mlp, res_mlp, mnist1d_cnn."""
    key = (name, kind, tuple(sorted(kw.items())))
    if key not in _CACHE:
        torch.manual_seed(0)
        if name == "digits_mlp":
            xtr, xte, ytr, yte = digits_data()
            model = train(DigitsMLP(kind), xtr, ytr, epochs=40)
        elif name == "res_mlp":
            xtr, xte, ytr, yte = digits_data()
            model = train(ResQ(kind), xtr, ytr, epochs=30)
        elif name == "mnist1d_cnn":
            xtr, xte, ytr, yte = mnist1d_data()
            model = train(Mnist1dCNN(kind, **kw), xtr, ytr, epochs=30)
        else:
            raise KeyError(name)
        _CACHE[key] = (model, (xtr, xte, ytr, yte))
    return _CACHE[key]
