cd ~/src/orders-api
git pull --rebase
export GITHUB_TOKEN=ghp_dwwK1cS0HYXB8ruoaHWiG7W1yQscL5RJchT5
gh pr list --state open
git clone https://oauth2:glpat-xDzh2-PsGZHKStGa3joc@gitlab.com/northwind/infra.git
ls -la
docker run --rm -p 5432:5432 -e POSTGRES_PASSWORD=postgres postgres:16.3
mysql -h 10.0.3.12 -u root -p'ZlcGQVqDPFE4MS' app
twine upload dist/* -u __token__ -p pypi-AgEIcHlwaS5vcmcsMpmb1Yrdn3NYLRiGTJtxOLrJCUNuOu9A2BhWt9hyQx9Xgewm_1b0QmIdltzjx
export CUSTOS_API_KEY=cst_ak_clkFY1LM9vElT0o3Ggi4JQVI7f6c0_i0xEaGVf43qAY
custos run -- make deploy
curl -s https://ifconfig.me  # -> 14.248.155.16
ssh deploy@3.187.117.191
git log --oneline -3
git show fc0c4a7b3b9b8f0fd2296e52f2657fdf4adb8de9
kubectl -n prod rollout status deploy/orders-api
history | tail -n 20
