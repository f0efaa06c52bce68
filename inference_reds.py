"""REDS4 benchmark: RGB PSNR/SSIM of every frame of clips 000, 011, 015 and 020.

    python inference_reds.py --model mia_vsr_reds --weights MIAVSR_REDS_x4.pth
    python inference_reds.py --opt options/test/X.yml --device cuda --precision fp16 --chunk 40

Prints a per-clip table and the average, and writes metrics.csv / metrics.json (protocol:
docs/metrics.md). ``--help`` lists the options.
"""

from vsrt.inference.cli import main_reds, run_script

if __name__ == "__main__":
    run_script(main_reds)
