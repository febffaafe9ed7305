"""The example command lines each verb's --help ends with."""

EXAMPLES = {
    "train": "vislab train configs/p1_model_a.yaml --data ../shared/data/dlcv-p1 --out runs/a\n"
    "  vislab train configs/p1_model_a.yaml --out runs/a --resume\n"
    "  vislab train configs/p1_model_a.yaml --set optim.lr=0.05 --set data.hflip=true\n"
    "  vislab train configs/p2_ensemble.yaml --data ../shared/data/dlcv-p2 --out runs/p2_ens",
    "predict": "vislab predict --ckpt runs/a/checkpoints/best.ckpt --images val_50 --out pred.csv\n"
    "  vislab predict --ckpt runs/seg/checkpoints/best.ckpt --images validation --out masks/\n"
    "  vislab predict --ckpt runs/a/checkpoints/best.ckpt runs/b/checkpoints/best.ckpt "
    "--images val_50 --out pred.csv\n"
    "  vislab predict --ckpt runs/p2_ens --images validation --out masks/",
    "evaluate": "vislab evaluate --pred pred.csv --gt val_gt.csv\n"
    "  vislab evaluate --pred pred_masks/ --gt p2_data/validation --json scores.json\n"
    "  vislab evaluate --pred masks/ --gt roads/val --ckpt runs/roads/checkpoints/best.ckpt",
    "report": "vislab report runs/p1_model_a runs/p2_cpu --out report/",
    "models": "vislab models\n  vislab models --search convnext\n"
    "  vislab models model_a --draw model_a.png\n"
    "  vislab models timm/resnet18 --size 64\n  vislab models deeplabv3_resnet50 --size 512",
    "embed": "vislab embed runs/p1_model_a\n"
    "  vislab embed runs/p1_model_a/checkpoints/best.ckpt --data val_50 --out embed/",
    "progress": "vislab progress runs/p2_cpu\n"
    "  vislab progress runs/p2_cpu --tiles 0013 0062 0104 --out progress.png",
    "data": "vislab data download hw1 && vislab train configs/p1_cpu.yaml --data hw1/p1_data\n"
    "  vislab data download hw1 --zip ~/Downloads/hw1_data.zip\n"
    "  vislab data demo demo_data",
    "reproduce": "vislab reproduce hw1 --profile cpu --out runs/reproduce-cpu\n"
    "  vislab reproduce demo_data --profile demo --out runs/demo",
    "submission": "vislab submission --p1 runs/p1_ensemble --p2 runs/p2_ensemble --out hw1\n"
    "  vislab submission --p1 runs/p1_lite/checkpoints/best.ckpt --out hw1_p1\n"
    "  cd hw1 && bash hw1_1.sh ../val_50 pred.csv",
    "export": "vislab export --ckpt runs/p2_cpu/checkpoints/best.ckpt --format onnx\n"
    "  vislab predict --ckpt runs/p2_cpu/checkpoints/best.onnx --images validation --out m/",
    "overlay": "vislab overlay --image validation/0013_sat.jpg --mask masks/0013.png --out o.png\n"
    "  vislab overlay --image validation --mask masks --out overlays/",
}
