"""course_lib.lab: the course's instruments and notebook machinery.

The core library (``course_lib``) is the stable public API: the model, tokenizer, data, trainer and
sampler. ``course_lib.lab`` is the course's toolbox, built on top of the core and free to grow with
the notebooks: measurements, probes, synthetic tasks, the predict/reveal widgets and plots. The core
never imports from here (``tests/test_layout.py`` enforces it).

Import the instruments as submodules::

    from course_lib.lab import budget, probes, socratic, viz

| module | what it holds |
|---|---|
| ``budget`` | the fast/full budget switch (``COURSE_BUDGET``), ``by_budget``, the notebook thread policy |
| ``socratic`` | ``predict``, ``reveal``, ``Claim``, ``claims_table``, ``essence`` |
| ``viz`` | CJK-capable matplotlib setup and plot helpers |
| ``measure`` | timing, memory, bits per character, entropy baselines, padding waste |
| ``params`` | analytic parameter counts and byte sizes |
| ``attention_math`` | softmax, Q·K variance and saturation arithmetic on plain tensors |
| ``probes`` | measurements on a ``Transformer``: attention capture, dataset loss, accuracies |
| ``heads`` | what single heads do: role scores, symmetry, permutation, the W_V·W_O fold, ablation |
| ``rope_analysis`` | RoPE frequency and relative-position analysis |
| ``synthetic`` | seeded task generators with ground-truth answers |
| ``position_probes`` | permutation checks, a linear position probe, the sinusoidal shift identity, subspace angles |
| ``extrapolation`` | perplexity change over evaluation lengths, RoPE stretched at inference, a passkey retrieval probe |
| ``decode_cost`` | KV-cache bytes, prefill vs decode timing, batch sweeps, per-position loss |
| ``decoding`` | repetition and distinct-n of decoded text, decoder comparison, pointer-chasing accuracy by hops |
| ``propagation`` | signal through depth: per-block gradient norms, residual-stream RMS, block Jacobians and their spectra |
| ``stability`` | training runs judged by an explicit divergence rule, grids over seeds, margin-based comparisons |
| ``catalog`` | the question catalog (``notebooks/questions.json``): ids, notebooks, question lines, claim verdicts |
| ``flops`` | per-component FLOPs of a layer (checked against ``FlopCounterMode``), crossovers, timing, n×n memory |
| ``objectives`` | target pairings (shifted, unrelated, reversed, identity, masked LM) and the input-influence probe |
| ``markov`` | a second-order Markov source with known next-token distributions, KL per position, off-source steps |
| ``padding`` | padded segments, clean-text P(pad)/loss, tokens before a pad, batch padding and truncation waste |
| ``embedding_probes`` | random near-orthogonality, nearest neighbours, group cosines, analogy ranks |
| ``head_count`` | head-count instruments: the pair-lookup task, averaged full-width heads, attention time across h, seeded train-and-score |
| ``ffn_probes`` | FFN ablation, the logit lens and early exit by confidence, exact zeros in the hidden layer |
| ``causality`` | position-by-position Jacobians and loss gradients, one-position update effects, prefix vs cached logits |
| ``scaling`` | the a·N^-b + c scaling-law fit (with its degrees of freedom) and the standard small benchmark |
| ``ngram`` | a counted n-gram model with interpolated absolute discounting (the Bitter Lesson's baseline) |
| ``continual`` | LoRA adapters (add, merge) and replay mixing for continual-learning experiments |
| ``baselines`` | an LSTM language model for the Trainer, parameter matching, training tokens/s, accuracy by group |
| ``efficient_attention`` | linear attention as a prefix sum, attention memory (forward peak, saved for backward), FLOPs, SDPA backends |
"""
