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


rule preprocess:
    input:
        image_file,
    output:
        P.npy(),
    log:
        P.log(P.npy()),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    script:
        "../scripts/preprocess.py"


rule tokenize_labels:
    output:
        [P.tokens(label=label) for label in LABELS],
    log:
        P.log(P.tokens(label="tokenize_labels")),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    params:
        labels=LABELS,
        template=config["label_template"],
        context_length=P.CONTEXT_LENGTH,
    script:
        "../scripts/tokenize_labels.py"
