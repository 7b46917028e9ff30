# Reference features per item of each tower: torch_fp32 (cn_clip PyTorch, the ground truth) of every
# item, onnx_fp32 and onnx_fp16 (on the reference runtime, the seed's online reference) of the first
# shard's (every item with `chain_images: all`). A job per stage and shard of items, each loading its
# model once: rule reference (text_reference for the text tower), with the architecture of a matrix and
# the shard in its name when there are several (reference_3of8).
for arch in M.archs:
    for tower in M.towers:
        for shard in M.shards[tower]:

            rule:
                name:
                    shard.rule(
                        "reference" if tower == "image" else "text_reference",
                        *M.arch_qualifier(arch),
                    )
                input:
                    # unnamed: see shard_inputs
                    shard_inputs(arch, tower, shard),
                    unpack(reference_model(arch, tower)),
                output:
                    # first: Snakemake finds a file's rule by trying the rule's outputs in order, and
                    # similarity looks this one up
                    features=P.reference_features(arch, tower, "{stage}", shard.name),
                    per_item=[
                        P.reference(arch, tower, "{stage}", item)
                        for item in shard.items
                    ],
                log:
                    P.log(P.reference(arch, tower, "{stage}", shard.label)),
                benchmark:
                    P.cost(P.reference(arch, tower, "{stage}", shard.label))
                wildcard_constraints:
                    stage="|".join(M.shard_stages(tower, shard)),
                conda:
                    "../envs/cnclip.yaml"
                threads: P.physical_cores()
                resources:
                    # torch_fp32 of the text tower loads it in fp32, as the exporter does
                    mem_mb=R.mem_mb(arch, "reference" if tower == "image" else "export"),
                    # measured per item: scales with the shard's items
                    runtime=R.runtime_min(arch, "reference", scale=len(shard.items)),
                params:
                    arch=arch,
                    tower=tower,
                    # every inference job computes on `threads`, whatever Snakemake scaled the job to
                    threads=M.threads,
                script:
                    "../scripts/reference.py"
