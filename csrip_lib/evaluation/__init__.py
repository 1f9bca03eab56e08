"""Scoring and applying trained models: PSNR/SSIM conventions, the identity judge, the fast inference path,
`csrip evaluate`, `csrip hallucinate`, measurements of Fig. 3-5. Never imports training."""
