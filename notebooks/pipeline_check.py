# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tiny chapter (test fixture)
# Used by tests/test_build.py: a parameterised notebook with a figure, prose and a circuitsvis view.

# %% tags=["remove-cell"]
# Colab setup: fetch and install the book's code and models (does nothing outside Colab).
import sys, subprocess  # noqa: E401
if "google.colab" in sys.modules:
    subprocess.run("git clone -q --depth 1 https://github.com/circuits-book/circuits-book /content/circuits-book"
                   " && pip install -q -r /content/circuits-book/requirements.txt -e /content/circuits-book",
                   shell=True, check=True)
    sys.path.insert(0, "/content/circuits-book")

# %% tags=["parameters"]
n = 3
fail = False
seed = 0

# %%
import matplotlib.pyplot as plt
from shared.notebook import say
from shared.viz import attention_patterns
import numpy as np
plt.plot(np.arange(n)); plt.show()
say(f"We drew **{n}** points.")
if fail:
    raise ValueError("asked to fail")
attention_patterns(["a", "b", "c"], np.tril(np.ones((2, 3, 3))) / 3)
