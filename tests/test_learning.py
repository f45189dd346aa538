"""Learning, not only running: a small LaS classifier solves a task whose label joins tokens far apart."""

from __future__ import annotations

import pytest
import torch

from configuration_las import LaSConfig
from modeling_las import LaSForSequenceClassification

LENGTH = 512
NOISE_TOKENS = (3, 10)  # ids 3..9 are noise; 1 and 2 are the two kinds of marker token
MARKER_SPAN = 64


def far_marker_batch(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A marker (id 1 or 2) in the first 64 positions gives the label; a decoy marker of independent kind sits in the
    last 64 positions, 384 to 511 tokens later. Every other token is noise.

    Counting marker kinds gets at most 75% (when the two kinds differ it is a coin flip). The model has no position
    embeddings, so the only way to know which marker came first is causal attention across the hundreds of positions
    between them: above 95% it must carry the first marker's identity over that distance.
    """
    ids = torch.randint(*NOISE_TOKENS, (batch_size, LENGTH), generator=generator)
    label_kind = torch.randint(1, 3, (batch_size,), generator=generator)
    decoy_kind = torch.randint(1, 3, (batch_size,), generator=generator)
    rows = torch.arange(batch_size)
    ids[rows, torch.randint(0, MARKER_SPAN, (batch_size,), generator=generator)] = label_kind
    ids[rows, torch.randint(LENGTH - MARKER_SPAN, LENGTH, (batch_size,), generator=generator)] = decoy_kind
    return ids, label_kind - 1


@pytest.mark.slow  # hundreds of training steps: about 70 to 100 s
def test_las_learns_a_long_range_dependency():
    torch.manual_seed(0)
    config = LaSConfig(
        vocab_size=10,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        position_embedding_type="none",
        num_labels=2,
        las_alpha_max=0.1,  # heads 0, 0.001, 0.01, 0.1
        las_pool_size=3,
    )
    model = LaSForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    train_generator = torch.Generator().manual_seed(1)
    test_ids, test_labels = far_marker_batch(512, torch.Generator().manual_seed(2))

    def held_out_accuracy() -> float:
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(chunk).logits.argmax(-1) for chunk in test_ids.split(128)])
        model.train()
        return (predictions == test_labels).float().mean().item()

    accuracy, history = 0.0, []
    for step in range(1, 301):
        ids, labels = far_marker_batch(16, train_generator)
        model(ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 25 == 0:
            accuracy = held_out_accuracy()
            history.append((step, round(accuracy, 3)))
            if accuracy > 0.95:
                break
    print(f"held-out accuracy by step: {history}")  # shown with `pytest -s`
    assert accuracy > 0.95, f"held-out accuracy by step: {history}"
