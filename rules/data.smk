# Input images (the bundled sample set, or config `images`) and their preprocessed .npy.


rule sample_images:
    output:
        [f"{P.SAMPLE_IMAGES_DIR}/{name}" for name in P.SAMPLE_IMAGES.values()],
    log:
        "logs/sample_images.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/sample_images.py"


rule preprocess:
    input:
        image_file,
    output:
        "results/{arch}/npy/{stem}.npy",
    log:
        "logs/{arch}/preprocess/{stem}.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/preprocess.py"
