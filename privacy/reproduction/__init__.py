"""The reproduction of Jain, Raskhodnikova, Sivakumar & Smith, "The Price of Differential Privacy
under Continual Observation" (ICML 2023, arXiv:2112.00828), with the continual-counting anchors
it builds on: ``regretlab-reproduce dp_continual_jain2023`` (docs/privacy.md, "Reproduction",
lists the items and shows the results). Items:

* R1, R2 (`counting`): exact variance oracles of the four continual counters against our exact
  table of max/mean losses, and their Monte Carlo / engine check;
* R5 (`maxsum`): MaxSum error of d counters, sparse-vector re-release and the batch baseline vs
  T and d (the T^{1/3} price of continual release);
* R7, R8 (`audit`): the black-box auditor on floating-point Laplace (Mironov) and on StatDP's
  sparse-vector / noisy-max battery and the sparse-vector mechanism of Jain et al..
"""

from privacy.reproduction.audit import r7, r8
from privacy.reproduction.counting import r1, r2
from privacy.reproduction.maxsum import r5

TITLE = (
    "Jain, Raskhodnikova, Sivakumar & Smith, The Price of Differential Privacy under Continual "
    "Observation (ICML 2023), with continual-counting anchors (Dwork et al. 2010, Honaker 2015, "
    "Andersson & Pagh 2023, Fichtenberger, Henzinger & Upadhyay 2023)"
)
ITEMS = {"R1": r1, "R2": r2, "R5": r5, "R7": r7, "R8": r8}
