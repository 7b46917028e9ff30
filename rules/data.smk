# Each tower's inputs: images (the bundled sample set, or config `images`) preprocessed to .npy, and
# the zero-shot labels' prompts tokenised for the text tower.


rule sample_images:
    output:
        [f"{P.SAMPLE_IMAGES_DIR}/{name}" for name in P.SAMPLE_IMAGES.values()],
    log:
        "logs/sample_images.log",
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    script:
        "../scripts/sample_images.py"


# One rule per shard of images (and architecture of a matrix): preprocess, or preprocess_3of8 when the
# images make several shards. Outputs are named files, so Snakemake finds each one's rule directly.
# The shard's list of its npy files comes first: the shard's image jobs take it as their one input
# (rules/common.smk shard_model_inputs), and Snakemake tries a rule's outputs in order.
for arch in M.archs:
    for shard in M.shards["image"]:

        rule:
            name:
                shard.rule("preprocess", *M.arch_qualifier(arch))
            input:
                [M.images[stem] for stem in shard.items],
            output:
                shard=P.npy_shard(arch, shard.name),
                npy=[P.npy(arch, stem) for stem in shard.items],
                # the uint8 pixels, for a target whose device normalises them (M.pixels)
                pixels_shard=(
                    P.npy_shard(arch, shard.name, pixels=True) if M.pixels else []
                ),
                pixels=(
                    [P.npy(arch, stem, pixels=True) for stem in shard.items]
                    if M.pixels
                    else []
                ),
            log:
                P.log(P.npy(arch, shard.label)),
            benchmark:
                P.cost(P.npy(arch, shard.label))
            conda:
                "../envs/cnclip.yaml"
            threads: 1
            resources:
                mem_mb=R.LIGHT["mem_mb"],
                runtime=R.LIGHT["runtime"],
            params:
                arch=arch,
            script:
                "../scripts/preprocess.py"


rule tokenize_labels:
    output:
        [P.tokens(label=label) for label in M.labels],
    log:
        P.log(P.tokens(label="tokenize_labels")),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    params:
        labels=M.labels,
        template=config["label_template"],
        context_length=P.CONTEXT_LENGTH,
    script:
        "../scripts/tokenize_labels.py"
