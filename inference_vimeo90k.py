"""Vimeo-90K-T (centre frame), Vid4 and UDM10 benchmarks: Y-channel PSNR/SSIM.

    python inference_vimeo90k.py --model mia_vsr_vimeo --meta-file datasets/vimeo90k/vimeo_septuplet/sep_testlist.txt
    python inference_vimeo90k.py --model vrt_x4_vimeo_bd --dataset udm10 --gt-root ... --lq-root ...
    python inference_vimeo90k.py --model savsr_vimeo --dataset vid4 --scale 2.5   # LQ made from GT

Prints a per-clip table and the average, and writes metrics.csv / metrics.json (protocol:
docs/metrics.md). ``--help`` lists the options.
"""

from vsrt.inference.cli import main_vimeo, run_script

if __name__ == "__main__":
    run_script(main_vimeo)
